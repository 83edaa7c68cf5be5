"""The connector's stateless relay (sans-IO): Via, branch, Max-Forwards, response routing."""

from __future__ import annotations

import pytest

from hybridge.connector.traversal_relay import (
    Answer,
    Drop,
    Relay,
    Side,
    TraversalRelay,
)
from hybridge.core.sip import Request, Response, SipStream, parse_datagram, serialize

HOST = "connector.example.test"


def _relay(key: bytes = b"k" * 32) -> TraversalRelay:
    return TraversalRelay(host=HOST, transports={Side.EDGE: "TLS", Side.PREMISES: "TCP"}, key=key)


def _request(
    method: str = "INVITE", *, max_forwards: int | None = 69, branch: str = "z9hG4bKedge1"
) -> Request:
    lines = [
        f"{method} sip:bob@premises.example.test SIP/2.0",
        f"Via: SIP/2.0/TLS edge.example.test:7001;branch={branch}",
        "Via: SIP/2.0/TLS ua.example.test;branch=z9hG4bKua1",
        *([f"Max-Forwards: {max_forwards}"] if max_forwards is not None else []),
        "From: <sip:alice@example.test>;tag=a1",
        "To: <sip:bob@premises.example.test>",
        "Call-ID: relay-1",
        f"CSeq: 1 {method}",
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def _parse(data: bytes) -> Request | Response:
    stream = SipStream()
    stream.receive_data(data)
    event = stream.next_event()
    assert isinstance(event, Request | Response)
    return event


def test_request_from_the_edge_goes_to_the_premises_with_our_via() -> None:
    action = _relay().on_request(_request(), Side.EDGE)
    assert isinstance(action, Relay) and action.to is Side.PREMISES
    out = _parse(action.data)
    assert isinstance(out, Request)
    assert out.max_forwards == 68
    top = out.via[0]
    assert (top.transport, top.host) == ("TCP", HOST)
    assert top.branch is not None and top.branch.startswith("z9hG4bK-hx")
    assert [v.host for v in out.via[1:]] == ["edge.example.test", "ua.example.test"]


def test_request_from_the_premises_goes_to_the_edge_over_tls() -> None:
    action = _relay().on_request(_request(max_forwards=None), Side.PREMISES)
    assert isinstance(action, Relay) and action.to is Side.EDGE
    out = _parse(action.data)
    assert isinstance(out, Request)
    assert out.via[0].transport == "TLS"
    assert out.max_forwards == 70  # RFC 3261 §16.6 step 3: added when absent


def test_branch_is_stateless_and_shared_by_cancel_and_retransmission() -> None:
    relay = _relay()
    first = relay.stateless_branch(_request(), Side.PREMISES)
    assert relay.stateless_branch(_request(), Side.PREMISES) == first
    assert relay.stateless_branch(_request("CANCEL"), Side.PREMISES) == first
    assert relay.stateless_branch(_request(branch="z9hG4bKother"), Side.PREMISES) != first
    assert relay.stateless_branch(_request(), Side.EDGE) != first


def test_max_forwards_zero_is_answered_483_and_an_ack_dropped() -> None:
    action = _relay().on_request(_request(max_forwards=0), Side.EDGE)
    assert isinstance(action, Answer) and action.status == 483
    answer = _parse(action.data)
    assert isinstance(answer, Response) and answer.status_code == 483
    assert answer.to_address.tag == "hb-connector"
    ack = _relay().on_request(_request("ACK", max_forwards=0), Side.EDGE)
    assert isinstance(ack, Drop) and "ACK" in ack.reason


def _response_to(relayed: bytes, *, status: int = 200) -> Response:
    request = _parse(relayed)
    assert isinstance(request, Request)
    return request.response(status, "OK", to_tag="b1")


def test_response_follows_our_via_back_to_the_other_side() -> None:
    relay = _relay()
    action = relay.on_request(_request(), Side.EDGE)
    assert isinstance(action, Relay)
    back = relay.on_response(_response_to(action.data), Side.PREMISES)
    assert isinstance(back, Relay) and back.to is Side.EDGE
    response = _parse(back.data)
    assert isinstance(response, Response)
    assert [v.host for v in response.via] == ["edge.example.test", "ua.example.test"]


def test_response_with_a_foreign_top_via_is_dropped() -> None:
    response = _request().response(200, "OK", to_tag="b1")
    action = _relay().on_response(response, Side.PREMISES)
    assert isinstance(action, Drop)
    assert "is not the connector's" in action.reason


def test_response_with_a_forged_hxs_is_dropped() -> None:
    # Relayed under another process's key: same host, same shape, wrong MAC.
    action = _relay(key=b"x" * 32).on_request(_request(), Side.EDGE)
    assert isinstance(action, Relay)
    dropped = _relay().on_response(_response_to(action.data), Side.PREMISES)
    assert isinstance(dropped, Drop) and "no valid hxs for premises" in dropped.reason


def test_response_arriving_on_the_side_it_was_not_sent_to_is_dropped() -> None:
    # Our Via says the request went to the premises; the same response arriving from the
    # edge would let the edge steer responses into the premises connection.
    relay = _relay()
    action = relay.on_request(_request(), Side.EDGE)
    assert isinstance(action, Relay)
    dropped = relay.on_response(_response_to(action.data), Side.EDGE)
    assert isinstance(dropped, Drop) and "no valid hxs for edge" in dropped.reason


def test_response_to_our_own_request_is_dropped() -> None:
    relay = _relay()
    via = relay.via_for(_request(), Side.PREMISES)
    lines = [
        "SIP/2.0 200 OK",
        f"Via: {via}",
        "From: <sip:a@x>;tag=1",
        "To: <sip:b@y>;tag=2",
        "Call-ID: own",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
        "",
        "",
    ]
    response = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(response, Response)
    action = relay.on_response(response, Side.PREMISES)
    assert isinstance(action, Drop) and "sent itself" in action.reason


@pytest.mark.parametrize("side", list(Side))
def test_sides_are_opposite(side: Side) -> None:
    assert side.other.other is side and side.other is not side


def test_serialised_forward_keeps_untouched_lines_byte_for_byte() -> None:
    request = _request()
    action = _relay().on_request(request, Side.EDGE)
    assert isinstance(action, Relay)
    original = serialize(request)
    assert b"Call-ID: relay-1\r\n" in original and b"Call-ID: relay-1\r\n" in action.data
