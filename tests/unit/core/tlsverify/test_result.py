"""``core.tlsverify.result``: rendering a refused peer's names for the admin."""

from __future__ import annotations

import pytest

from hybridge.core.tlsverify import describe_presented_names


@pytest.mark.parametrize(
    ("names", "line"),
    [
        (("dns:a.example",), "SAN DNS:a.example"),
        (("cn:c.example",), "CN c.example"),
        (
            ("dns:a.example", "uri:sip:b.example", "cn:c"),
            "SAN DNS:a.example, URI:sip:b.example and CN c",
        ),
        (("cn:x", "ip:192.0.2.1", "cn:y"), "SAN IP:192.0.2.1 and CN x, y"),
        ((r"dns:a\x00.example",), r"SAN DNS:a\x00.example"),
    ],
)
def test_names_are_described_san_first_then_cn(names: tuple[str, ...], line: str) -> None:
    assert describe_presented_names(names) == line


def test_no_names_is_said_so() -> None:
    assert describe_presented_names(()) == "no name at all"
