"""The relay's premises-listener rules (sans-IO): ``hxc`` connection ids and Record-Route."""

from __future__ import annotations

from hybridge.connector.traversal_relay import Drop, Relay, Side, TraversalRelay
from hybridge.core.sip import Request, Response, parse_datagram

HOST = "connector.example.test"
RR = "<sip:192.0.2.5:5061;transport=tls;lr;hxr>"


def _relay(key: bytes = b"k" * 32) -> TraversalRelay:
    return TraversalRelay(
        host=HOST,
        transports={Side.EDGE: "TLS", Side.PREMISES: "TLS"},
        key=key,
        record_route=("192.0.2.5", 5061, "tls"),
    )


def _invite(*, routes: tuple[str, ...] = (), to_tag: str | None = None) -> Request:
    lines = [
        "INVITE sip:alice@callservice.example.test SIP/2.0",
        "Via: SIP/2.0/TLS pbx.example.test:5061;branch=z9hG4bKpbx1",
        *(f"Route: {r}" for r in routes),
        "Max-Forwards: 70",
        "From: <sip:bob@premises.example.test>;tag=b1",
        "To: <sip:alice@callservice.example.test>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID: listener-1",
        "CSeq: 1 INVITE",
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def _parse(data: bytes) -> Request | Response:
    message = parse_datagram(data)
    assert isinstance(message, Request | Response)
    return message


def _response_to(relayed: Request, *, via_top: str | None = None) -> Response:
    vias = [via_top] if via_top is not None else []
    vias += [v.value for v in relayed.via][1 if via_top is not None else 0 :]
    lines = [
        "SIP/2.0 200 OK",
        *(f"Via: {v}" for v in vias),
        "From: <sip:bob@premises.example.test>;tag=b1",
        "To: <sip:alice@callservice.example.test>;tag=c1",
        "Call-ID: listener-1",
        "CSeq: 1 INVITE",
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(message, Response)
    return message


def test_a_request_from_a_premises_connection_carries_its_id_and_our_record_route() -> None:
    action = _relay().on_request(_invite(), Side.PREMISES, 7)
    assert isinstance(action, Relay) and action.to is Side.EDGE
    out = _parse(action.data)
    assert isinstance(out, Request)
    hxc = out.via[0].param("hxc")
    assert hxc is not None and hxc.startswith("7.")
    assert out.get_all("Record-Route") == (RR,)


def test_the_response_goes_back_over_the_connection_the_request_came_on() -> None:
    relay = _relay()
    action = relay.on_request(_invite(), Side.PREMISES, 7)
    assert isinstance(action, Relay)
    answer = relay.on_response(_response_to(_parse(action.data)), Side.EDGE)  # type: ignore[arg-type]
    assert isinstance(answer, Relay)
    assert (answer.to, answer.conn_id) == (Side.PREMISES, 7)
    back = _parse(answer.data)
    assert [v.host for v in back.via] == ["pbx.example.test"]


def test_a_forged_connection_id_is_dropped() -> None:
    relay = _relay()
    action = relay.on_request(_invite(), Side.PREMISES, 7)
    assert isinstance(action, Relay)
    sent = _parse(action.data)
    assert isinstance(sent, Request)
    # Steer the response onto connection 8 by rewriting the id but keeping 7's MAC.
    forged_top = sent.via[0].value.replace(";hxc=7.", ";hxc=8.")
    verdict = relay.on_response(_response_to(sent, via_top=forged_top), Side.EDGE)
    assert isinstance(verdict, Drop)
    assert verdict.reason.endswith("carries no valid hxc")


def test_another_processes_key_does_not_validate_the_id() -> None:
    action = _relay(b"a" * 32).on_request(_invite(), Side.PREMISES, 7)
    assert isinstance(action, Relay)
    verdict = _relay(b"b" * 32).on_response(_response_to(_parse(action.data)), Side.EDGE)  # type: ignore[arg-type]
    assert isinstance(verdict, Drop)


def test_the_dialled_connection_needs_no_id() -> None:
    relay = _relay()
    action = relay.on_request(_invite(), Side.PREMISES)
    assert isinstance(action, Relay)
    out = _parse(action.data)
    assert isinstance(out, Request) and out.via[0].param("hxc") is None
    answer = relay.on_response(_response_to(out), Side.EDGE)
    assert isinstance(answer, Relay) and answer.conn_id == 0


def test_our_route_is_popped_and_others_stay() -> None:
    edge_route = "<sip:edge.example.test:7001;transport=tls;lr;hbr=traversal>"
    request = _invite(routes=(RR, edge_route), to_tag="c1")
    action = _relay().on_request(request, Side.PREMISES, 3)
    assert isinstance(action, Relay)
    out = _parse(action.data)
    assert isinstance(out, Request)
    assert [r.uri for r in out.route] == [
        "sip:edge.example.test:7001;transport=tls;lr;hbr=traversal"
    ]
    # In-dialog (To tag): no new Record-Route.
    assert out.get_all("Record-Route") == ()


def test_a_route_on_our_host_but_another_port_or_without_hxr_is_not_ours() -> None:
    for route in (
        "<sip:192.0.2.5:5062;transport=tls;lr;hxr>",
        "<sip:192.0.2.5:5061;transport=tls;lr>",
        "<sip:other@192.0.2.5:5061;lr;hxr>",
    ):
        action = _relay().on_request(_invite(routes=(route,), to_tag="c1"), Side.PREMISES, 1)
        assert isinstance(action, Relay)
        out = _parse(action.data)
        assert isinstance(out, Request) and len(out.route) == 1, route


def test_without_a_listener_there_is_no_record_route() -> None:
    relay = TraversalRelay(host=HOST, transports={Side.EDGE: "TLS", Side.PREMISES: "TCP"})
    action = relay.on_request(_invite(), Side.PREMISES)
    assert isinstance(action, Relay)
    assert _parse(action.data).get_all("Record-Route") == ()
