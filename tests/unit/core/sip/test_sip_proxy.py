"""``core.sip.proxy``: the stateless branch, the Via connection tags, Record-Route/Route."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridge.core.sip import Request, SipStream
from hybridge.core.sip.proxy import (
    MAGIC_COOKIE,
    TAG_MAC_LENGTH,
    ConnectionTags,
    branch_digest_3261,
    record_route_uri,
    route_names_proxy,
    sent_by,
    stateless_branch,
    via_mac,
    via_mac_matches,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def request(
    method: str = "INVITE",
    *,
    via: str = "SIP/2.0/TLS cloud.example.test:5061;branch=z9hG4bKa1",
    cseq: int = 1,
    call_id: str = "c1",
) -> Request:
    lines = [
        f"{method} sip:bob@premises.example.test SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        "From: <sip:alice@example.test>;tag=f1",
        "To: <sip:bob@premises.example.test>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Content-Length: 0",
        "",
        "",
    ]
    stream = SipStream()
    stream.receive_data("\r\n".join(lines).encode())
    message = stream.next_event()
    assert isinstance(message, Request)
    return message


# -- the stateless branch (RFC 3261 §16.11) ---------------------------------------------


def test_branch_is_the_hash_of_the_incoming_sent_by_and_branch() -> None:
    # Pinned: a changed formula would give every transaction in flight a new branch.
    expected = hashlib.sha256(b"3261|cloud.example.test|5061|z9hG4bKa1").hexdigest()[:24]
    assert stateless_branch(request(), marker="hb") == f"{MAGIC_COOKIE}-hb{expected}"


def test_branch_is_shared_by_retransmission_cancel_and_ack() -> None:
    first = stateless_branch(request(), marker="hb")
    assert stateless_branch(request(), marker="hb") == first
    assert stateless_branch(request("CANCEL"), marker="hb") == first
    assert stateless_branch(request("ACK"), marker="hb") == first


def test_branch_differs_for_another_transaction_marker_or_scope() -> None:
    first = stateless_branch(request(), marker="hx", scope="premises")
    other_branch = request(via="SIP/2.0/TLS cloud.example.test:5061;branch=z9hG4bKa2")
    other_host = request(via="SIP/2.0/TLS elsewhere.example.test:5061;branch=z9hG4bKa1")
    assert stateless_branch(other_branch, marker="hx", scope="premises") != first
    assert stateless_branch(other_host, marker="hx", scope="premises") != first
    assert stateless_branch(request(), marker="hx", scope="edge") != first
    assert stateless_branch(request(), marker="hx") != first
    assert stateless_branch(request(), marker="hb", scope="premises") != first


def test_branch_without_a_port_hashes_none() -> None:
    via = "SIP/2.0/TLS cloud.example.test;branch=z9hG4bKa1"
    expected = hashlib.sha256(b"3261|cloud.example.test|None|z9hG4bKa1").hexdigest()[:24]
    assert stateless_branch(request(via=via), marker="hb") == f"{MAGIC_COOKIE}-hb{expected}"


def test_rfc2543_branch_hashes_the_fields_and_ignores_the_cseq_method() -> None:
    via = "SIP/2.0/UDP old.example.test:5060"
    invite = stateless_branch(request(via=via), marker="hb")
    assert stateless_branch(request("CANCEL", via=via), marker="hb") == invite
    assert stateless_branch(request(via=via, cseq=2), marker="hb") != invite
    assert stateless_branch(request(via=via, call_id="c2"), marker="hb") != invite
    not_magic = "SIP/2.0/UDP old.example.test:5060;branch=a1"
    assert stateless_branch(request(via=not_magic), marker="hb") != invite


def test_fast_path_digest_equals_the_full_path() -> None:
    digest = branch_digest_3261(b"cloud.example.test", 5061, b"z9hG4bKa1").decode()
    assert stateless_branch(request(), marker="hb") == f"{MAGIC_COOKIE}-hb{digest}"
    scoped = branch_digest_3261(b"cloud.example.test", 5061, b"z9hG4bKa1", scope=b"edge")
    full = stateless_branch(request(), marker="hx", scope="edge")
    assert full == f"{MAGIC_COOKIE}-hx{scoped.decode()}"


# -- Via connection tags (RFC 5923-style response routing) ------------------------------


def test_tag_verifies_under_the_same_key_and_domain() -> None:
    tags = ConnectionTags(KEY)
    tag = tags.tag(42)
    assert tag == f"42.{hmac.new(KEY, b'42', hashlib.sha256).hexdigest()[:TAG_MAC_LENGTH]}"
    assert ConnectionTags(KEY).verify(tag) == 42


def test_tag_made_under_another_key_is_refused() -> None:
    assert ConnectionTags(KEY).verify(ConnectionTags(OTHER_KEY).tag(42)) is None


def test_tag_made_for_another_domain_is_refused() -> None:
    assert ConnectionTags(KEY, domain="conn|").verify(ConnectionTags(KEY).tag(42)) is None
    assert ConnectionTags(KEY).verify(ConnectionTags(KEY, domain="conn|").tag(42)) is None


def test_tag_with_another_id_is_refused() -> None:
    tags = ConnectionTags(KEY)
    forged = f"43.{tags.mac(42)}"
    assert tags.verify(forged) is None


@pytest.mark.parametrize("cut", [1, 6, TAG_MAC_LENGTH - 1, TAG_MAC_LENGTH])
def test_truncated_tag_is_refused(cut: int) -> None:
    tags = ConnectionTags(KEY)
    tag = tags.tag(42)
    assert tags.verify(tag[:-cut]) is None


@pytest.mark.parametrize(
    "tag",
    [None, "", ".", "42", "42.", "x.abcdefabcdef", "-1.abcdefabcdef", "².abcdefabcdef"],
)
def test_malformed_tag_is_refused(tag: str | None) -> None:
    assert ConnectionTags(KEY).verify(tag) is None


def test_padded_tag_is_refused() -> None:
    tags = ConnectionTags(KEY)
    assert tags.verify(tags.tag(42) + "0") is None


@given(st.integers(min_value=0, max_value=2**40), st.text(max_size=20))
def test_only_the_genuine_tag_verifies(conn_id: int, junk: str) -> None:
    tags = ConnectionTags(KEY, cache_size=8)
    assert tags.verify(tags.tag(conn_id)) == conn_id
    if junk != tags.mac(conn_id):
        assert tags.verify(f"{conn_id}.{junk}") is None


def test_cache_is_bounded_and_gives_the_same_macs() -> None:
    tags = ConnectionTags(KEY, cache_size=2)
    macs = [tags.mac(i) for i in range(5)]
    assert [tags.mac(i) for i in range(5)] == macs
    assert len(tags._cache) <= 2


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        ConnectionTags(b"")


def test_via_mac_is_truncated_hmac_sha256() -> None:
    full = hmac.new(KEY, b"edge", hashlib.sha256).hexdigest()
    assert via_mac(KEY, "edge") == full[:TAG_MAC_LENGTH]
    assert via_mac(OTHER_KEY, "edge") != via_mac(KEY, "edge")


# -- Record-Route and Route (RFC 3261 §16.4, §16.6 step 4) ------------------------------


def test_sent_by_brackets_ipv6_once() -> None:
    assert sent_by("edge.example.test", 5062) == "edge.example.test:5062"
    assert sent_by("::1", 5062) == "[::1]:5062"
    assert sent_by("[::1]", 5062) == "[::1]:5062"


def test_record_route_uri_is_a_loose_route_with_our_marker() -> None:
    uri = record_route_uri("edge.example.test", 5062, transport="tls", param="hbr=cloud")
    assert uri == "<sip:edge.example.test:5062;transport=tls;lr;hbr=cloud>"
    assert record_route_uri("::1", 5070, transport="tcp", param="hxr") == (
        "<sip:[::1]:5070;transport=tcp;lr;hxr>"
    )


def test_our_record_route_is_recognised_on_the_way_back() -> None:
    uri = record_route_uri("Edge.Example.Test", 5062, transport="tls", param="hbr=cloud")
    assert route_names_proxy(uri, host="edge.example.test", param="hbr")
    assert route_names_proxy(uri[1:-1], host="edge.example.test", param="hbr", port=5062)
    v6 = record_route_uri("::1", 5070, transport="tcp", param="hxr")
    assert route_names_proxy(v6, host="::1", param="hxr", port=5070)
    assert route_names_proxy(
        "sip:pbx.example.test;lr;hxr", host="pbx.example.test", param="hxr", port=5060
    )


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("sip:edge.example.test:5062;lr", "no marker parameter"),
        ("sip:edge.example.test:5062;lr;hbrx=cloud", "another parameter"),
        ("sip:other.example.test:5062;lr;hbr=cloud", "another host"),
        ("sip:bob@edge.example.test:5062;lr;hbr=cloud", "a user part"),
        ("tel:+15551234;hbr=cloud", "not a SIP URI"),
        ("sip:edge.example.test:5099;lr;hbr=cloud", "another port"),
        ("sip:edge.example.test;lr;hbr=cloud", "default port 5060, not 5062"),
    ],
)
def test_other_routes_are_not_ours(uri: str, why: str) -> None:
    assert not route_names_proxy(uri, host="edge.example.test", param="hbr", port=5062), why


def test_via_mac_matches_only_the_genuine_mac() -> None:
    mac = via_mac(KEY, "edge")
    assert via_mac_matches(KEY, "edge", mac)
    assert not via_mac_matches(OTHER_KEY, "edge", mac)
    assert not via_mac_matches(KEY, "premises", mac)
    assert not via_mac_matches(KEY, "edge", mac[:-1])
    assert not via_mac_matches(KEY, "edge", mac + "0")
    assert not via_mac_matches(KEY, "edge", "")
    assert not via_mac_matches(KEY, "edge", "\x80" * TAG_MAC_LENGTH)
