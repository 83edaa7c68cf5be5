"""``scan_head`` and ``SipStream.next_frame``: the fast path's view and framing, held to the
full codec (``parse_head``/``next_event``), which stays the reference."""

from __future__ import annotations

import pytest
import sipgen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridge.core.sip import (
    CLOSED,
    NEED_DATA,
    BodyTooLargeError,
    DuplicateHeaderError,
    Frame,
    HeaderLineTooLongError,
    MessageTooLargeError,
    MissingContentLengthError,
    Ping,
    Request,
    Response,
    SipError,
    SipStream,
    TooManyHeadersError,
    parse_frame,
    scan_head,
)

# sipgen.py sits next to this file, whose directory pytest puts on sys.path first.
GEN = sipgen
MESSAGES = st.one_of(GEN.request_bytes(), GEN.request_bytes(odd=False))
PLAIN = (
    b"OPTIONS sip:uas@premises.example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 192.0.2.1:5061;rport;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:bench@example.test>;tag=b1\r\n"
    b"To: Bob <sip:uas@premises.example.test>;tag=t9\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 4\r\n\r\nbody"
)


def events(data: bytes, *, frames: bool, step: int | None = None) -> list[object]:
    """Every event of ``data`` fed whole (or ``step`` bytes at a time), then EOF."""
    stream = SipStream()
    out: list[object] = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    try:
        for chunk in [*chunks, b""]:
            stream.receive_data(chunk)
            while True:
                event = stream.next_frame() if frames else stream.next_event()
                if event is NEED_DATA or event is CLOSED:
                    break
                out.append(parse_frame(event) if isinstance(event, Frame) else event)
    except SipError:
        out.append("error")
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES)
def test_a_lazy_view_implies_the_full_codec_accepts_with_the_same_values(data: bytes) -> None:
    head = data.split(b"\r\n\r\n", 1)[0]
    view = scan_head(head)
    if view is None:
        return
    [message] = events(data, frames=False)
    assert isinstance(message, Request)
    assert view.method.decode() == message.method and view.uri.decode() == message.uri
    top = message.via[0]
    assert (view.via_host.decode(), view.via_port) == (top.host, top.port)
    assert (view.via_branch.decode() if view.via_branch else None) == top.branch
    assert view.max_forwards == message.max_forwards
    assert view.to_tag == (message.to_address.tag is not None)
    assert view.second_via == (len(message.via) > 1)
    assert view.lines[view.first_via].split(b":", 1)[1].strip() == top.value.encode()
    assert view.content_length == len(message.body)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES, st.integers(1, 40))
def test_frames_give_the_messages_next_event_gives(data: bytes, step: int) -> None:
    reference = events(data + PLAIN, frames=False)
    assert events(data + PLAIN, frames=True) == reference
    # fed in pieces, the same events (a failure is a failure either way)
    assert events(data + PLAIN, frames=True, step=step) == reference


def test_a_plain_request_has_a_lazy_view() -> None:
    view = scan_head(PLAIN.split(b"\r\n\r\n")[0])
    assert view is not None
    assert (view.method, view.uri, view.status) == (b"OPTIONS", b"sip:uas@premises.example.test", 0)
    assert (view.via_host, view.via_port, view.via_branch) == (
        b"192.0.2.1",
        5061,
        b"z9hG4bK776asdhds",
    )
    assert (view.first_via, view.max_forwards_index, view.max_forwards) == (1, 2, 70)
    assert view.to_tag and not view.second_via
    assert view.content_length == 4


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Max-Forwards: 70", b"Max-Forwards: 70\r\n continued"),  # folding
        (b"Max-Forwards: 70", b"Max-Forwards: 7\n0"),  # a bare LF
        (b"Max-Forwards: 70", b"Max-Forwards: 256"),  # over 255
        (b"Max-Forwards: 70", b"Max-Forwards: 70\r\nRoute: <sip:p.example.test;lr>"),
        (b"Call-ID: a84b4c76e66710", b"Call-ID: a b"),  # holds a space
        (b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"),  # method mismatch
        (b"CSeq: 1 OPTIONS", b"CSeq: 2147483648 OPTIONS"),  # 2**31
        (b"Via: SIP/2.0/TLS 192.0.2.1:5061", b"Via: SIP/2.0/TLS 192.0.2.1:65536"),
        (b"To: Bob <sip:uas@premises.example.test>;tag=t9", b"To: Bob sip:uas@x"),
        (b"OPTIONS sip:uas@premises.example.test SIP/2.0", b"OPTIONS sip:uas@p?x=1 SIP/2.0"),
        (b"OPTIONS sip:uas@premises.example.test SIP/2.0", b"OPTIONS  sip:uas@p SIP/2.0"),
        (b"From: <sip:bench@example.test>;tag=b1\r\n", b""),  # no From
    ],
)
def test_anything_not_plain_has_no_lazy_view(old: bytes, new: bytes) -> None:
    data = PLAIN.replace(old, new)
    assert data != PLAIN
    assert scan_head(data.split(b"\r\n\r\n")[0]) is None


@pytest.mark.parametrize(
    ("to", "tag"),
    [
        (b"To: Bob <sip:uas@p>;tag=t9", True),
        (b"To: Bob <sip:uas@p>;TAG=t9", True),
        (b"To: Bob <sip:uas@p>;x=1;tag=t9", True),
        (b"To: Bob <sip:uas@p>;tagx=1", False),
        (b"To: Bob <sip:uas@p>;tag", False),  # valueless: no tag (grammar.NameAddress.tag)
        (b'To: Bob <sip:uas@p>;x="a;tag=b"', False),  # inside a quoted value: no parameter
        (b"To: Bob <sip:uas@p>", False),
    ],
)
def test_the_to_tag_is_the_first_tag_parameter_with_a_value(to: bytes, tag: bool) -> None:
    data = PLAIN.replace(b"To: Bob <sip:uas@premises.example.test>;tag=t9", to)
    view = scan_head(data.split(b"\r\n\r\n")[0])
    assert view is not None and view.to_tag is tag
    [message] = events(data, frames=False)
    assert isinstance(message, Request)
    assert (message.to_address.tag is not None) is tag


def test_a_response_has_a_lazy_view_with_its_status() -> None:
    head = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TLS edge.example.test:7001;branch=z9hG4bK-hb1\r\n"
        b"Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKa\r\nFrom: <sip:a@x>;tag=1\r\n"
        b"To: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0"
    )
    view = scan_head(head)
    assert view is not None and view.status == 180 and view.second_via
    assert scan_head(head.replace(b"180 Ringing", b"180 Ring\ring")) is None
    assert scan_head(head.replace(b"180", b"700")) is None


# -- framing limits: next_frame enforces what next_event enforces ---------------------------


def frame_error(data: bytes, step: int | None = None, **limits: int) -> type[SipError] | None:
    stream = SipStream(**limits)
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    try:
        for chunk in chunks:
            stream.receive_data(chunk)
            while stream.next_frame() not in (NEED_DATA, CLOSED):
                pass
    except SipError as exc:
        return type(exc)
    return None


@pytest.mark.parametrize("step", [None, 1])
def test_limits_hold_on_frames_whole_and_byte_by_byte(step: int | None) -> None:
    long_line = PLAIN.replace(b"Call-ID: a84b4c76e66710", b"Call-ID: " + b"x" * 200)
    assert frame_error(long_line, step, max_line_length=100) is HeaderLineTooLongError
    many = PLAIN.replace(b"CSeq:", b"X-A: 1\r\n" * 20 + b"CSeq:")
    assert frame_error(many, step, max_header_count=10) is TooManyHeadersError
    assert frame_error(PLAIN, step, max_message_size=100) is MessageTooLargeError
    big = PLAIN.replace(b"Content-Length: 4", b"Content-Length: 5000")
    assert frame_error(big, step, max_body_size=1000) is BodyTooLargeError
    # the twins: the same messages under the default limits frame fine
    for data in (long_line, many, PLAIN):
        assert frame_error(data, step) is None


def test_a_10_mb_message_is_refused_before_its_body_is_buffered() -> None:
    stream = SipStream()
    head = PLAIN.replace(b"Content-Length: 4\r\n\r\nbody", b"Content-Length: 10485760\r\n\r\n")
    stream.receive_data(head + b"x" * 1000)
    with pytest.raises(BodyTooLargeError, match="Content-Length 10485760 is over"):
        stream.next_frame()
    # a header section that never ends is refused once it passes the message limit
    endless = SipStream()
    endless.receive_data(b"OPTIONS sip:a@b SIP/2.0\r\n" + (b"X-Pad: " + b"y" * 8000 + b"\r\n") * 9)
    with pytest.raises(MessageTooLargeError):
        endless.next_frame()


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (b"Content-Length: 4\r\n", b"", MissingContentLengthError),
        (b"Content-Length: 4\r\n", b"Content-Length: 4\r\nl: 4\r\n", DuplicateHeaderError),
    ],
)
def test_framing_falls_back_to_the_full_parse_for_content_length(
    old: bytes, new: bytes, error: type[SipError]
) -> None:
    assert frame_error(PLAIN.replace(old, new)) is error


def test_a_compact_content_length_frames_on_the_fast_path() -> None:
    stream = SipStream()
    stream.receive_data(PLAIN.replace(b"Content-Length: 4", b"l: 4") + b"\r\n\r\n")
    frame = stream.next_frame()
    assert isinstance(frame, Frame) and frame.body == b"body"
    assert isinstance(stream.next_frame(), Ping)
    assert isinstance(parse_frame(frame), Request)
    assert not isinstance(parse_frame(frame), Response)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=400), MESSAGES.map(lambda m: m.split(b"\r\n\r\n")[0])))
def test_scan_head_never_raises(head: bytes) -> None:
    # arbitrary bytes and generated sections alike: a view or None, never an exception
    view = scan_head(head)
    assert view is None or view.lines[0] == head.split(b"\r\n")[0]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_mutated_plain_head_is_either_plain_or_left_to_the_full_codec(
    data: st.DataObject,
) -> None:
    head = bytearray(PLAIN.split(b"\r\n\r\n")[0])
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(head) - 1))
        head[at] = data.draw(st.sampled_from(b' \t\r\n:;,<>"@=x0'))
    # what the relay sees: a frame from the stream, then its lazy view
    stream = SipStream()
    stream.receive_data(bytes(head) + b"\r\n\r\nbody")
    try:
        frame = stream.next_frame()
    except SipError:
        return  # framing refused it: neither path runs
    if not isinstance(frame, Frame):
        return  # the mutation announced a longer body: still waiting for it
    view = scan_head(frame.head)
    if view is not None:
        # the full codec accepts whatever the fast path would relay
        message = parse_frame(frame)
        assert isinstance(message, Request)
        assert message.max_forwards == view.max_forwards
