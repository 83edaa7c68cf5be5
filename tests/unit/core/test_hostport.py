"""``core.hostport``: splitting, checking and writing ``host:port`` text."""

from __future__ import annotations

import pytest

from hybridge.core.hostport import (
    HostPortText,
    is_ip_or_host_name,
    join_host_port,
    split_host_port,
)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("edge.example.com:5063", "edge.example.com", 5063),
        ("edge.example.com", "edge.example.com", 5062),
        ("[2001:db8::1]:5070", "2001:db8::1", 5070),
        ("[2001:db8::1]", "2001:db8::1", 5062),
        ("2001:db8::1", "2001:db8::1", 5062),
        ("192.0.2.1:5061", "192.0.2.1", 5061),
    ],
)
def test_split_accepts_the_address_forms(text: str, host: str, port: int) -> None:
    split = split_host_port(text, 5062)
    assert split is not None
    assert (split.host, split.port) == (host, port)


@pytest.mark.parametrize("text", ["[2001:db8::1", "[2001:db8::1]5070", "[::1]x:5070"])
def test_split_refuses_broken_brackets(text: str) -> None:
    assert split_host_port(text, 5062) is None


@pytest.mark.parametrize("port_text", ["", "x", "-1", "50 60", "²", "٣"])
def test_port_that_is_not_ascii_digits_is_none(port_text: str) -> None:
    split = split_host_port(f"edge.example.com:{port_text}", 5062)
    assert split == HostPortText("edge.example.com", port_text)
    assert split.port is None


@pytest.mark.parametrize(
    "host",
    ["edge.example.com", "edge.example.com.", "a", "192.0.2.1", "::1", "xn--bcher-kva.example"],
)
def test_host_names_and_ip_literals_are_hosts(host: str) -> None:
    assert is_ip_or_host_name(host)


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("", "empty"),
        ("-edge.example.com", "label starts with a hyphen"),
        ("edge-.example.com", "label ends with a hyphen"),
        ("edge..example.com", "empty label"),
        ("*.example.com", "wildcard"),
        ("edge_1.example.com", "underscore"),
        ("a" * 64 + ".example.com", "label over 63"),
        (".".join(["abcdefghi"] * 26), "name over 253"),
        ("[::1]", "bracketed literal"),
        ("edge\x00.example.com", "NUL"),
    ],
)
def test_other_text_is_not_a_host(host: str, why: str) -> None:
    assert not is_ip_or_host_name(host), why


def test_join_brackets_ipv6_only() -> None:
    assert join_host_port("edge.example.com", 5062) == "edge.example.com:5062"
    assert join_host_port("2001:db8::1", 5062) == "[2001:db8::1]:5062"
    assert join_host_port("[2001:db8::1]", 5062) == "[2001:db8::1]:5062"
