"""Property tests of the SIP codec: split points, arbitrary bytes, mutations, round trips."""

from __future__ import annotations

import contextlib
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridge.core.sip import (
    CLOSED,
    NEED_DATA,
    PING,
    Request,
    Response,
    SipError,
    SipStream,
    parse_datagram,
    serialize,
)

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

SEEDS = [
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"v: SIP/2.0/TLS a.example.com:5061;branch=z9hG4bK1, SIP/2.0/TCP b.example.com\r\n"
    b"Max-Forwards: 70\r\n"
    b'f: "Alice, A." <sip:alice@example.com>;tag=1\r\n'
    b"t: Bob <sip:bob@example.com>\r\n"
    b"i: abc@a.example.com\r\n"
    b"CSeq: 1\r\n INVITE\r\n"
    b"Route: <sip:edge.example.com;lr>\r\n"
    b"Subject: folded\r\n\tacross lines\r\n"
    b"c: application/sdp\r\n"
    b"l: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP,
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/TLS a.example.com:5061;branch=z9hG4bK1;received=192.0.2.9\r\n"
    b"From: <sip:alice@example.com>;tag=1\r\n"
    b"To: <sip:bob@example.com>;tag=2\r\n"
    b"Call-ID: abc@a.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Record-Route: <sip:edge.example.com;lr>\r\n"
    b"Content-Length: 0\r\n\r\n",
    PING,
    b"\r\n",
]

SMALL_LIMITS = {"max_message_size": 700, "max_header_count": 12, "max_line_length": 120}


def run(chunks: list[bytes], **limits: int) -> list[object]:
    """Feed ``chunks`` then EOF; return every event, ending with the error if one is raised."""
    stream = SipStream(**limits)
    out: list[object] = []
    try:
        for chunk in [*chunks, b""]:
            stream.receive_data(chunk)
            while (event := stream.next_event()) is not NEED_DATA:
                out.append(event)
                if event is CLOSED:
                    return out
    except SipError as error:
        out.append((type(error), error.status_hint))
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return [piece for piece in pieces if piece]


messages = st.lists(st.sampled_from(SEEDS), min_size=1, max_size=4).map(b"".join)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(messages))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 34, 44, 58, 59, 60, 62, 0x80, 0xFF, 65]))
        if action == "insert":
            data.insert(position, byte)
        elif position < len(data):
            if action == "replace":
                data[position] = byte
            else:
                del data[position]
    return bytes(data)


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=messages, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_random_split_points_give_the_events_of_the_whole_buffer(
    data: bytes, cuts: list[int]
) -> None:
    whole = run([data])
    assert run(split(data, cuts)) == whole
    assert not any(isinstance(event, tuple) for event in whole)


@FUZZ
@given(data=mutated(), cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_mutated_messages_fail_the_same_way_however_they_are_split(
    data: bytes, cuts: list[int]
) -> None:
    assert run(split(data, cuts)) == run([data])
    assert run(split(data, cuts), **SMALL_LIMITS) == run([data], **SMALL_LIMITS)


@FUZZ
@given(data=mutated())
def test_one_byte_at_a_time_matches_whole_buffer(data: bytes) -> None:
    assert run([data[i : i + 1] for i in range(len(data))]) == run([data])


@FUZZ
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_sip_errors(data: bytes) -> None:
    run([data])  # run() lets anything but SipError escape and fail the test
    run([data], **SMALL_LIMITS)
    with contextlib.suppress(SipError):
        parse_datagram(data)


@FUZZ
@given(data=mutated())
def test_mutated_datagrams_raise_only_sip_errors(data: bytes) -> None:
    with contextlib.suppress(SipError):
        parse_datagram(data)


_VALUE_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=',"<>;')


@FUZZ
@given(
    extra=st.lists(
        st.tuples(
            st.text(string.ascii_letters + string.digits, min_size=1, max_size=10).map(
                "X-".__add__
            ),
            st.text(_VALUE_CHARS, min_size=1, max_size=30),
            st.booleans(),
        ),
        max_size=6,
    ),
    body=st.binary(max_size=200),
    compact=st.booleans(),
)
def test_round_trip_parse_serialize_parse(
    extra: list[tuple[str, str, bool]], body: bytes, compact: bool
) -> None:
    lines = [
        b"MESSAGE sip:bob@example.com SIP/2.0",
        (b"v: " if compact else b"Via: ") + b"SIP/2.0/TLS a.example.com;branch=z9hG4bK7",
        (b"f: " if compact else b"From: ") + b"<sip:alice@example.com>;tag=9",
        b"To: <sip:bob@example.com>",
        b"Call-ID: rt@example.com",
        b"CSeq: 3 MESSAGE",
    ]
    for name, value, fold in extra:
        if fold:
            lines.append(f"{name}: {value}\r\n  {value}".encode())
        else:
            lines.append(f"{name}: {value}".encode())
    lines.append((b"l: " if compact else b"Content-Length: ") + str(len(body)).encode())
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    (message,) = run([data])[:1]
    assert isinstance(message, Request | Response)
    assert serialize(message) == data
    (again,) = run([serialize(message)])[:1]
    assert again == message
    for name, value, fold in extra:
        assert (f"{value} {value}" if fold else value) in message.get_all(name)
