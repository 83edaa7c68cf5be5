"""The stateless relay's decisions (RFC 3261 §16.11), message by message, no sockets."""

from __future__ import annotations

import pytest

from hybridge.core.sip import Request, Response, SipStream
from hybridge.edge.relay import Answer, Drop, Forward, Relay, SendTo, Side

RELAY = Relay(
    host="edge.example.test", ports={Side.CLOUD: 5062, Side.TRAVERSAL: 7001}, key=b"k" * 32
)


def parse(data: bytes) -> Request | Response:
    stream = SipStream()
    stream.receive_data(data)
    message = stream.next_event()
    assert isinstance(message, Request | Response)
    return message


def req(
    method: str = "INVITE",
    uri: str = "sip:bob@premises.example.test",
    *,
    branch: str = "z9hG4bKa1",
    call_id: str = "c1",
    cseq: str | None = None,
    to_tag: str | None = None,
    headers: tuple[str, ...] = ("Max-Forwards: 70",),
) -> Request:
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/TLS cloud.example.test:5061;branch={branch}",
        *headers,
        "From: <sip:alice@example.test>;tag=f1",
        "To: <sip:bob@premises.example.test>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq or '1 ' + method}",
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def forwarded(action: object) -> Request:
    assert isinstance(action, Forward), action
    message = parse(action.data)
    assert isinstance(message, Request)
    return message


def answered(action: object) -> Response:
    assert isinstance(action, Answer), action
    message = parse(action.data)
    assert isinstance(message, Response)
    return message


def test_invite_from_the_cloud_is_relayed_to_the_traversal_side() -> None:
    out = forwarded(RELAY.on_request(req(), side=Side.CLOUD, conn_id=7))
    assert out.via[0].host == "edge.example.test" and out.via[0].port == 7001
    assert (out.via[0].param("hbc") or "").startswith("7.")
    assert out.via[1].branch == "z9hG4bKa1"
    assert out.max_forwards == 69
    assert [r.uri for r in out.record_route] == [
        "sip:edge.example.test:7001;transport=tls;lr;hbr=traversal",
        "sip:edge.example.test:5062;transport=tls;lr;hbr=cloud",
    ]


def test_request_from_the_traversal_side_goes_to_the_cloud() -> None:
    action = RELAY.on_request(req(), side=Side.TRAVERSAL, conn_id=1)
    assert isinstance(action, Forward) and action.to is Side.CLOUD
    assert forwarded(action).via[0].port == 5062


def test_missing_max_forwards_is_added_as_70() -> None:
    out = forwarded(RELAY.on_request(req(headers=()), side=Side.CLOUD, conn_id=1))
    assert out.max_forwards == 70


def test_max_forwards_zero_gets_483_and_one_is_relayed() -> None:
    answer = answered(
        RELAY.on_request(req(headers=("Max-Forwards: 0",)), side=Side.CLOUD, conn_id=1)
    )
    assert answer.status_code == 483 and answer.to_address.tag == "hb-edge"
    out = forwarded(RELAY.on_request(req(headers=("Max-Forwards: 1",)), side=Side.CLOUD, conn_id=1))
    assert out.max_forwards == 0


def test_ack_is_never_answered() -> None:
    action = RELAY.on_request(
        req("ACK", headers=("Max-Forwards: 0",), cseq="1 ACK", to_tag="t"),
        side=Side.CLOUD,
        conn_id=1,
    )
    assert isinstance(action, Drop) and "483" in action.reason


def test_options_for_the_edge_is_answered_and_for_others_relayed() -> None:
    answer = answered(
        RELAY.on_request(req("OPTIONS", "sip:edge.example.test"), side=Side.CLOUD, conn_id=1)
    )
    assert answer.status_code == 200 and "INVITE" in (answer.get("Allow") or "")
    # a user at the edge's host is not the edge
    forwarded(
        RELAY.on_request(req("OPTIONS", "sip:bob@edge.example.test"), side=Side.CLOUD, conn_id=1)
    )
    forwarded(RELAY.on_request(req("OPTIONS", "sip:pbx.example.test"), side=Side.CLOUD, conn_id=1))


def test_proxy_require_gets_420_listing_the_extension() -> None:
    answer = answered(
        RELAY.on_request(
            req(headers=("Max-Forwards: 70", "Proxy-Require: foo")), side=Side.CLOUD, conn_id=1
        )
    )
    assert answer.status_code == 420 and answer.get("Unsupported") == "foo"


def test_our_routes_are_removed_and_others_kept() -> None:
    ours = (
        "Route: <sip:edge.example.test:5062;transport=tls;lr;hbr=cloud>, "
        "<sip:edge.example.test:7001;transport=tls;lr;hbr=traversal>, <sip:proxy.example.test;lr>"
    )
    request = req("BYE", to_tag="t", headers=("Max-Forwards: 70", ours))
    out = forwarded(RELAY.on_request(request, side=Side.CLOUD, conn_id=1))
    assert [r.uri for r in out.route] == ["sip:proxy.example.test;lr"]
    assert out.record_route == ()  # in-dialog: no Record-Route
    # the twins: our host without our parameter, and our parameter on another host
    for foreign in (
        "Route: <sip:edge.example.test:5062;lr>",
        "Route: <sip:other.example.test:5062;lr;hbr=cloud>",
    ):
        kept = forwarded(
            RELAY.on_request(req("BYE", to_tag="t", headers=(foreign,)), side=Side.CLOUD, conn_id=1)
        )
        assert len(kept.route) == 1


def _branch(request: Request) -> str:
    return RELAY.stateless_branch(request)


def test_stateless_branch_is_stable_for_retransmission_cancel_and_non_2xx_ack() -> None:
    invite = req()
    assert _branch(invite) == _branch(req())
    assert _branch(req("CANCEL", cseq="1 CANCEL")) == _branch(invite)
    assert _branch(req("ACK", cseq="1 ACK", to_tag="t")) == _branch(invite)
    assert _branch(invite).startswith("z9hG4bK")
    # the twin: another transaction gets another branch
    assert _branch(req(branch="z9hG4bKa2")) != _branch(invite)


def test_rfc2543_branch_hashes_the_fields_of_section_16_11() -> None:
    old = req(branch="old1")
    assert _branch(old) == _branch(req(branch="old1"))
    assert _branch(req(branch="old1", call_id="c2")) != _branch(old)
    assert _branch(req("CANCEL", branch="old1", cseq="1 CANCEL")) == _branch(old)


def _response_via(via: str, status: int = 180) -> Response:
    lines = [
        f"SIP/2.0 {status} Ringing",
        f"Via: {via}",
        "Via: SIP/2.0/TLS cloud.example.test:5061;branch=z9hG4bKa1",
        "From: <sip:alice@example.test>;tag=f1",
        "To: <sip:bob@premises.example.test>;tag=t",
        "Call-ID: c1",
        "CSeq: 1 INVITE",
        "Content-Length: 0",
        "",
        "",
    ]
    response = parse("\r\n".join(lines).encode())
    assert isinstance(response, Response)
    return response


def test_response_goes_back_on_the_connection_named_in_our_via() -> None:
    out = forwarded(RELAY.on_request(req(), side=Side.CLOUD, conn_id=42))
    action = RELAY.on_response(_response_via(out.via[0].value))
    assert isinstance(action, SendTo) and action.conn_id == 42
    relayed = parse(action.data)
    assert [v.branch for v in relayed.via] == ["z9hG4bKa1"]


@pytest.mark.parametrize(
    ("via", "fragment"),
    [
        ("SIP/2.0/TLS edge.example.test:7001;branch=z9hG4bKx;hbc=42.000000000000", "no valid hbc"),
        ("SIP/2.0/TLS edge.example.test:7001;branch=z9hG4bKx", "no valid hbc"),
        ("SIP/2.0/TLS other.example.test:7001;branch=z9hG4bKx;hbc=42.abc", "is not the edge's"),
    ],
)
def test_forged_or_foreign_vias_are_dropped(via: str, fragment: str) -> None:
    action = RELAY.on_response(_response_via(via))
    assert isinstance(action, Drop) and fragment in action.reason


def test_a_response_cannot_be_steered_to_another_connection() -> None:
    out = forwarded(RELAY.on_request(req(), side=Side.CLOUD, conn_id=42))
    forged = out.via[0].value.replace("hbc=42.", "hbc=43.")
    action = RELAY.on_response(_response_via(forged))
    assert isinstance(action, Drop)
