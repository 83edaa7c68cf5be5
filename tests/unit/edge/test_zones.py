"""Zone values: validated on construction, each rule with its rejecting twin."""

from __future__ import annotations

import pytest

from hybridge.core.tlsverify import CnRule
from hybridge.edge.errors import InvalidZone
from hybridge.edge.zones import PRESETS, PeerAddress, Zone, ZoneKind, subject_name_from


def test_dns_zone_normalises_its_subject_name_and_builds_the_policy() -> None:
    zone = Zone("webex", ZoneKind.DNS, "CallService.Example.TEST.", cn_rule=CnRule.NEVER)
    assert zone.subject_name == "callservice.example.test"
    policy = zone.policy()
    assert policy.expected == "callservice.example.test"
    assert policy.cn is CnRule.NEVER and policy.wildcards is False


def test_unicode_subject_name_is_stored_as_a_labels() -> None:
    assert Zone("idn", ZoneKind.DNS, "bücher.example").subject_name == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("*.example.com", "no wildcard"),
        ("callservice.example.com\x00.evil", "not a DNS host name"),
        ("", "is empty"),
        ("-bad-.example", "not a DNS host name"),
    ],
)
def test_invalid_subject_names_are_refused(value: str, fragment: str) -> None:
    with pytest.raises(InvalidZone, match="TLS verify subject name") as caught:
        Zone("cloud", ZoneKind.DNS, value)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("name", ["Cloud", "1cloud", "cloud_zone", "", "x" * 64])
def test_invalid_zone_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidZone, match=r"zone name .* is invalid"):
        Zone(name, ZoneKind.DNS, "callservice.example.test")


def test_unknown_kind_and_cn_rule_are_refused() -> None:
    with pytest.raises(InvalidZone, match="zone kind 'sip' is unknown"):
        Zone("cloud", "sip", "callservice.example.test")  # type: ignore[arg-type]
    with pytest.raises(InvalidZone, match="CN rule 'always' is unknown"):
        Zone("cloud", ZoneKind.DNS, "callservice.example.test", cn_rule="always")  # type: ignore[arg-type]


def test_traversal_zone_has_no_peer_address() -> None:
    Zone("conn", ZoneKind.TRAVERSAL, "connector.example.test")
    with pytest.raises(InvalidZone, match="the connector dials the edge"):
        Zone("conn", ZoneKind.TRAVERSAL, "connector.example.test", peer=PeerAddress("a.b", 1))


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("callservice.example.com:5062", "callservice.example.com", 5062),
        ("callservice.example.com", "callservice.example.com", 5062),
        ("127.0.0.1:15062", "127.0.0.1", 15062),
        ("[::1]:5063", "::1", 5063),
    ],
)
def test_peer_addresses_parse(text: str, host: str, port: int) -> None:
    address = PeerAddress.parse(text)
    assert (address.host, address.port) == (host, port)
    assert PeerAddress.parse(str(address)) == address


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("host:http", "has port 'http'"),
        ("host:0", "is not 1..65535"),
        ("host:70000", "is not 1..65535"),
        ("bad host:5062", "neither an IP address nor a DNS host name"),
        ("[::1", "is not '[ipv6]:port'"),
    ],
)
def test_bad_peer_addresses_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(InvalidZone) as caught:
        PeerAddress.parse(text)
    assert fragment in str(caught.value)


def test_webex_preset_is_the_seed_subject_name() -> None:
    assert subject_name_from(None, "webex") == "callservice.webex.com" == PRESETS["webex"]
    assert subject_name_from("a.example", None) == "a.example"
    with pytest.raises(InvalidZone, match="not both or neither"):
        subject_name_from("a.example", "webex")
    with pytest.raises(InvalidZone, match="not both or neither"):
        subject_name_from(None, None)
    with pytest.raises(InvalidZone, match="preset 'teams' is unknown"):
        subject_name_from(None, "teams")
