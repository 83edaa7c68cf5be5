"""The relay's fast path (``Relay.on_frame``) against its reference, the full codec.

The property: whenever the fast path acts, its action is the very one the full path
(``parse_frame`` + ``on_request``/``on_response``) returns, byte for byte; when it declines
(None), the full path decides. The examples show which shapes take which path, and that
every refusal of the full path (483, 420, a forged Via, a malformed header) is never
short-cut by the fast path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hybridge.core.sip import Frame, Request, SipError, SipStream, parse_frame
from hybridge.core.sip.shapes import HeadScanner
from hybridge.edge.relay import Action, Answer, Drop, Forward, Relay, SendTo, Side

_SIPGEN = Path(__file__).resolve().parents[1] / "core" / "sip" / "sipgen.py"


def sipgen() -> ModuleType:
    if "sipgen" in sys.modules:
        return sys.modules["sipgen"]
    spec = importlib.util.spec_from_file_location("sipgen", _SIPGEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sipgen"] = module
    spec.loader.exec_module(module)
    return module


GEN = sipgen()
PORTS = {Side.CLOUD: 5062, Side.TRAVERSAL: 7001}
RELAY = Relay(host=GEN.EDGE_HOST, ports=PORTS, key=b"k" * 32)
# The fast path's two scans: every shape compiled at once (the edge's steady state), and
# never (line by line, as for a shape seen once); the same key, so the same output.
COMPILING = Relay(
    host=GEN.EDGE_HOST,
    ports=PORTS,
    key=b"k" * 32,
    scanner=HeadScanner(max_shapes=10_000, compile_after=1, scans_per_compile=1),
)
LINE_BY_LINE = Relay(
    host=GEN.EDGE_HOST, ports=PORTS, key=b"k" * 32, scanner=HeadScanner(compile_after=10**9)
)
FAST = st.sampled_from([COMPILING, LINE_BY_LINE])
# scanned by the stream while framed (as the edge does), or by the relay
PRESCANNED = st.booleans()


def frame_of(data: bytes, scanner: HeadScanner | None = None) -> Frame | None:
    stream = SipStream(head_scanner=scanner.scan if scanner else None)
    stream.receive_data(data)
    try:
        event = stream.next_frame()
    except SipError:
        return None
    return event if isinstance(event, Frame) else None


def full(frame: Frame, side: Side, conn_id: int) -> Action | str:
    try:
        message = parse_frame(frame)
    except SipError as exc:
        return f"refused: {type(exc).__name__}"
    if isinstance(message, Request):
        return RELAY.on_request(message, side=side, conn_id=conn_id)
    return RELAY.on_response(message)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(GEN.request_bytes(), GEN.request_bytes(odd=False)),
    st.sampled_from(list(Side)),
    st.integers(1, 10**9),
    FAST,
    PRESCANNED,
)
def test_a_fast_forward_equals_the_full_paths_forward(
    data: bytes, side: Side, conn_id: int, relay: Relay, prescanned: bool
) -> None:
    frame = frame_of(data, relay.scanner if prescanned else None)
    assume(frame is not None)
    assert frame is not None
    fast = relay.on_frame(frame, side=side, conn_id=conn_id)
    if fast is not None:
        assert isinstance(fast, Forward)
        assert fast == full(frame, side, conn_id)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(GEN.request_bytes(odd=False), st.integers(1, 10**9), FAST, PRESCANNED, st.data())
def test_a_fast_response_equals_the_full_paths_response(
    data: bytes, conn_id: int, relay: Relay, prescanned: bool, draw: st.DataObject
) -> None:
    frame = frame_of(data)
    assume(frame is not None)
    assert frame is not None
    forwarded = full(frame, Side.CLOUD, conn_id)
    assume(isinstance(forwarded, Forward))
    assert isinstance(forwarded, Forward)
    response = frame_of(
        draw.draw(GEN.response_to(forwarded.data)), relay.scanner if prescanned else None
    )
    assume(response is not None)
    assert response is not None
    fast = relay.on_frame(response, side=Side.TRAVERSAL, conn_id=77)
    if fast is not None:
        assert isinstance(fast, SendTo) and fast.conn_id == conn_id
        assert fast == full(response, Side.TRAVERSAL, 77)


def wire(*lines: str, body: bytes = b"") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def options(*extra: str, first: str = "OPTIONS sip:uas@premises.example.test SIP/2.0") -> bytes:
    return wire(
        first,
        "Via: SIP/2.0/TLS 192.0.2.1:5061;rport;branch=z9hG4bK776asdhds",
        *extra,
        "From: <sip:bench@example.test>;tag=b1",
        "To: <sip:uas@premises.example.test>",
        "Call-ID: a84b4c76e66710",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    )


def both(data: bytes, side: Side = Side.CLOUD) -> tuple[Action | None, Action | str]:
    frame = frame_of(data)
    assert frame is not None
    # the same with a compiled shape (scanned twice: compiled, then the most recent shape)
    fast = [relay.on_frame(frame, side=side, conn_id=5) for relay in (RELAY, COMPILING)]
    again = frame_of(data, COMPILING.scanner)
    assert again is not None
    fast.append(COMPILING.on_frame(again, side=side, conn_id=5))
    assert fast[0] == fast[1] == fast[2]
    return fast[0], full(frame, side, 5)


def test_a_plain_options_takes_the_fast_path() -> None:
    fast, reference = both(options("Max-Forwards: 70"))
    assert isinstance(fast, Forward) and fast == reference
    assert b"\r\nMax-Forwards: 69\r\n" in fast.data
    assert fast.data.split(b"\r\n")[1].startswith(b"Via: SIP/2.0/TLS edge.example.test:7001;")


def test_an_invite_gets_its_record_routes_on_the_fast_path() -> None:
    sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    data = wire(
        "INVITE sip:bob@premises.example.test SIP/2.0",
        "v: SIP/2.0/TLS cloud.example.test:5061;branch=z9hG4bKinv1",
        "f: Alice <sip:alice@example.test>;tag=f1",
        "t: <sip:bob@premises.example.test>",
        "i: call-1",
        "CSeq: 1 INVITE",
        "m: <sip:alice@192.0.2.1;transport=tls>",
        "c: application/sdp",
        f"l: {len(sdp)}",
        body=sdp,
    )
    fast, reference = both(data)
    assert isinstance(fast, Forward) and fast == reference
    lines = fast.data.split(b"\r\n")
    assert lines[1] == b"Record-Route: <sip:edge.example.test:7001;transport=tls;lr;hbr=traversal>"
    assert lines[2] == b"Record-Route: <sip:edge.example.test:5062;transport=tls;lr;hbr=cloud>"
    assert lines[-1] == b"o=- 1 1 IN IP4 192.0.2.1" or fast.data.endswith(sdp)


def test_the_response_comes_back_on_the_fast_path() -> None:
    fast, _ = both(options("Max-Forwards: 70"))
    assert isinstance(fast, Forward)
    head = fast.data.split(b"\r\n\r\n")[0].split(b"\r\n")
    response = wire("SIP/2.0 200 OK", *(line.decode() for line in head[1:3]), *(
        line.decode() for line in head[4:]
    ))  # fmt: skip
    answer, reference = both(response, Side.TRAVERSAL)
    assert isinstance(answer, SendTo) and answer == reference and answer.conn_id == 5
    assert answer.data.split(b"\r\n")[1] == head[2]  # the cloud's Via is on top again


@pytest.mark.parametrize(
    ("extra", "first", "expected"),
    [
        # RFC 3261 §16.3 step 3 and §11.2: answered by the edge, never forwarded fast
        (("Max-Forwards: 0",), None, Answer),
        ((), "OPTIONS sip:edge.example.test SIP/2.0", Answer),
        # §16.3 step 5: 420 Bad Extension
        (("Max-Forwards: 70", "Proxy-Require: foo"), None, Answer),
        # §16.4: our own Route is popped by the full path
        (("Route: <sip:edge.example.test:5062;transport=tls;lr;hbr=cloud>",), None, Forward),
        # not plain: folded, a list on one line, LWS before a header parameter
        (("Max-Forwards: 70", "Subject: folded\r\n continued"), None, Forward),
        (("Contact: <sip:a@192.0.2.1> ;expires=60",), None, Forward),
        (("Contact: <sip:a@192.0.2.1>, <sip:b@192.0.2.2>",), None, Forward),
    ],
)
def test_what_is_not_plain_goes_to_the_full_path(
    extra: tuple[str, ...], first: str | None, expected: type
) -> None:
    data = options(*extra, first=first) if first else options(*extra)
    fast, reference = both(data)
    assert fast is None
    assert isinstance(reference, expected)


@pytest.mark.parametrize(
    ("extra", "refusal"),
    [
        (("Max-Forwards: 256",), "InvalidHeaderValueError"),
        (("Call-ID: twice",), "DuplicateHeaderError"),
        (('Contact: "unterminated <sip:a@192.0.2.1>',), "InvalidHeaderValueError"),
        (("Record-Route: sip:no-angle.example.test",), "InvalidHeaderValueError"),
    ],
)
def test_a_message_the_full_codec_refuses_is_never_forwarded_fast(
    extra: tuple[str, ...], refusal: str
) -> None:
    fast, reference = both(options(*extra))
    assert fast is None
    assert reference == f"refused: {refusal}"


def test_a_response_with_a_forged_connection_id_is_dropped_not_relayed() -> None:
    fast, _ = both(options("Max-Forwards: 70"))
    assert isinstance(fast, Forward)
    head = fast.data.split(b"\r\n\r\n")[0].decode().split("\r\n")
    forged = head[1].replace("hbc=5.", "hbc=6.")
    answer, reference = both(wire("SIP/2.0 200 OK", forged, *head[2:]), Side.TRAVERSAL)
    assert answer is None
    assert isinstance(reference, Drop)
    assert "carries no valid hbc" in reference.reason


def test_a_tag_inside_a_quoted_to_parameter_does_not_skip_record_route() -> None:
    # RFC 3261 §16.6 step 4: a dialog-creating request (no To tag) is Record-Routed; a
    # ";tag=" inside a quoted parameter value is no tag (the full codec's reading)
    data = options(first="INVITE sip:uas@premises.example.test SIP/2.0").replace(
        b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"
    )
    quoted = data.replace(b"To: <sip:uas@premises.example.test>", b'To: <sip:uas@p>;x="a;tag=b"')
    fast, reference = both(quoted)
    assert isinstance(fast, Forward) and fast == reference
    assert b"\r\nRecord-Route: <sip:edge.example.test:7001;" in fast.data
    # the twin: a real tag, an in-dialog request, no Record-Route
    tagged = data.replace(b"To: <sip:uas@premises.example.test>", b"To: <sip:uas@p>;tag=b")
    fast, reference = both(tagged)
    assert isinstance(fast, Forward) and fast == reference
    assert b"Record-Route" not in fast.data
