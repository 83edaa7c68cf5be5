"""Stream framing: pipelining, keep-alives, limits, end of stream, the failed state."""

from __future__ import annotations

import pytest
from sip_torture import SDP_150, msg

from hybridge.core.sip import (
    CLOSED,
    DEFAULT_MAX_MESSAGE_SIZE,
    NEED_DATA,
    PING,
    PONG,
    BodyTooLargeError,
    HeaderLineTooLongError,
    IncompleteMessageError,
    Limits,
    MalformedHeaderError,
    MalformedStartLineError,
    MessageTooLargeError,
    MissingContentLengthError,
    Ping,
    Pong,
    Request,
    Response,
    SipError,
    SipStream,
    StreamFailedError,
    TooManyHeadersError,
    UnsupportedVersionError,
    parse_datagram,
)


def options(n: int, *extra: str, body: bytes = b"") -> bytes:
    return msg(
        f"OPTIONS sip:edge{n}.example.com SIP/2.0",
        f"Via: SIP/2.0/TLS peer.example.com;branch=z9hG4bK{n}",
        "From: <sip:ping@example.com>;tag=1",
        "To: <sip:edge.example.com>",
        f"Call-ID: c{n}@example.com",
        f"CSeq: {n} OPTIONS",
        *extra,
        f"Content-Length: {len(body)}",
        body=body,
    )


def events(stream: SipStream) -> list[object]:
    out: list[object] = []
    while (event := stream.next_event()) is not NEED_DATA and event is not CLOSED:
        out.append(event)
    return out


def test_pipelined_messages_are_framed_by_content_length() -> None:
    body = SDP_150 + b"OPTIONS sip:fake SIP/2.0\r\n\r\n"  # a body that looks like a message
    data = options(1) + options(2, body=body) + options(3)
    stream = SipStream()
    stream.receive_data(data)
    got = events(stream)
    assert [m.cseq.number for m in got if isinstance(m, Request)] == [1, 2, 3]
    assert isinstance(got[1], Request) and got[1].body == body
    assert stream.buffered == 0


def test_a_message_split_at_every_byte_arrives_once_complete() -> None:
    data = options(1, body=SDP_150)
    stream = SipStream()
    for index in range(len(data) - 1):
        stream.receive_data(data[index : index + 1])
        assert stream.next_event() is NEED_DATA
    stream.receive_data(data[-1:])
    event = stream.next_event()
    assert isinstance(event, Request) and event.body == SDP_150


def test_double_crlf_is_a_ping_and_lone_crlf_before_a_message_is_skipped() -> None:
    stream = SipStream()
    stream.receive_data(PING + b"\r\n" + options(1) + PING)
    got = events(stream)
    assert isinstance(got[0], Ping)
    assert isinstance(got[1], Request)
    assert isinstance(got[2], Ping)
    assert len(got) == 3


def test_half_a_ping_waits_for_the_rest() -> None:
    stream = SipStream()
    stream.receive_data(b"\r\n")
    assert stream.next_event() is NEED_DATA
    stream.receive_data(b"\r")
    assert stream.next_event() is NEED_DATA
    stream.receive_data(b"\n")
    assert isinstance(stream.next_event(), Ping)


def test_the_pinging_side_sees_pongs() -> None:
    stream = SipStream(expect_pongs=True)
    stream.receive_data(PONG)
    assert isinstance(stream.next_event(), Pong)
    stream.receive_data(PONG + options(1))
    got = events(stream)
    assert isinstance(got[0], Pong) and isinstance(got[1], Request)


def test_clean_close_between_messages_is_closed() -> None:
    stream = SipStream()
    stream.receive_data(options(1))
    stream.receive_data(b"")
    assert isinstance(stream.next_event(), Request)
    assert stream.next_event() is CLOSED


def test_close_inside_a_header_section_is_incomplete() -> None:
    stream = SipStream()
    stream.receive_data(options(1)[:40])
    assert stream.next_event() is NEED_DATA
    stream.receive_data(b"")
    with pytest.raises(IncompleteMessageError, match="header section"):
        stream.next_event()


def test_missing_content_length_on_a_stream_is_refused() -> None:
    data = options(1).replace(b"Content-Length: 0\r\n", b"")
    stream = SipStream()
    stream.receive_data(data)
    with pytest.raises(MissingContentLengthError, match=r"§18\.3") as caught:
        stream.next_event()
    assert caught.value.status_hint == 400
    # the same message is fine in a datagram, where the datagram frames it
    assert isinstance(parse_datagram(data), Request)


def test_bare_lf_line_ends_are_refused() -> None:
    # RFC 3261 §7: lines end in CRLF; hops that disagree on line ends can be made to see
    # different headers, so a bare LF or CR is refused rather than tolerated.
    data = options(1).replace(b"To: <sip:edge.example.com>\r\n", b"To: <sip:edge.example.com>\n")
    stream = SipStream()
    stream.receive_data(data)
    with pytest.raises(MalformedHeaderError, match="bare CR or LF"):
        stream.next_event()
    with pytest.raises(MalformedStartLineError, match="bare CR or LF"):
        parse_datagram(b"OPTIONS sip:a@example.com\rX SIP/2.0" + options(1)[37:])


def test_after_an_error_the_stream_refuses_everything() -> None:
    stream = SipStream(max_body_size=10)
    stream.receive_data(options(1, body=b"x" * 11))
    with pytest.raises(BodyTooLargeError):
        stream.next_event()
    with pytest.raises(StreamFailedError, match="failed earlier") as caught:
        stream.next_event()
    assert caught.value.status_hint == 413
    with pytest.raises(StreamFailedError):
        stream.receive_data(options(2))


def test_data_after_the_end_of_stream_is_refused() -> None:
    stream = SipStream()
    stream.receive_data(b"")
    with pytest.raises(StreamFailedError, match="after the end"):
        stream.receive_data(b"x")


# ---- limits: each one gives its own error and status hint, at its exact boundary --------


def test_body_limit_boundary() -> None:
    ok = SipStream(max_body_size=150)
    ok.receive_data(options(1, body=SDP_150))
    assert isinstance(ok.next_event(), Request)
    over = SipStream(max_body_size=149)
    over.receive_data(options(1, body=SDP_150))
    with pytest.raises(BodyTooLargeError, match="Content-Length 150 is over the 149") as caught:
        over.next_event()
    assert caught.value.status_hint == 413


def test_message_limit_boundary() -> None:
    data = options(1, body=SDP_150)
    ok = SipStream(max_message_size=len(data))
    ok.receive_data(data)
    assert isinstance(ok.next_event(), Request)
    over = SipStream(max_message_size=len(data) - 1)
    over.receive_data(data)
    with pytest.raises(MessageTooLargeError, match=f"{len(data) - 1}-byte") as caught:
        over.next_event()
    assert caught.value.status_hint == 513


def test_header_section_over_the_message_limit_fails_before_it_ends() -> None:
    stream = SipStream(max_message_size=1000, max_line_length=100, max_header_count=1000)
    stream.receive_data(b"OPTIONS sip:a@example.com SIP/2.0\r\n")
    with pytest.raises(MessageTooLargeError) as caught:
        for n in range(100):
            stream.receive_data(f"X-Filler-{n:03}: {'y' * 40}\r\n".encode())
            assert stream.next_event() is NEED_DATA
    assert caught.value.status_hint == 513
    assert stream.buffered <= 1000 + 60


def test_line_length_boundary() -> None:
    line = "X-Long: " + "a" * (200 - len("X-Long: "))
    ok = SipStream(max_line_length=200)
    ok.receive_data(options(1, line))
    assert isinstance(ok.next_event(), Request)
    over = SipStream(max_line_length=199)
    over.receive_data(options(1, line))
    with pytest.raises(HeaderLineTooLongError, match="over 199 bytes") as caught:
        over.next_event()
    assert caught.value.status_hint == 513


def test_an_endless_line_fails_at_the_line_limit_not_the_message_limit() -> None:
    stream = SipStream(max_line_length=100)
    stream.receive_data(b"OPTIONS sip:a@example.com SIP/2.0\r\nX: ")
    assert stream.next_event() is NEED_DATA
    stream.receive_data(b"z" * 98)
    with pytest.raises(HeaderLineTooLongError):
        stream.next_event()


def test_header_count_boundary() -> None:
    six = options(1)  # Via, From, To, Call-ID, CSeq, Content-Length
    ok = SipStream(max_header_count=6)
    ok.receive_data(six)
    assert isinstance(ok.next_event(), Request)
    over = SipStream(max_header_count=5)
    over.receive_data(six)
    with pytest.raises(TooManyHeadersError, match="more than 5 lines") as caught:
        over.next_event()
    assert caught.value.status_hint == 513


def test_ten_megabyte_body_is_refused_when_its_header_section_ends() -> None:
    stream = SipStream()
    head = options(1).replace(b"Content-Length: 0", b"Content-Length: 10485760")
    stream.receive_data(head)
    with pytest.raises(BodyTooLargeError, match="10485760") as caught:
        stream.next_event()
    assert caught.value.status_hint == 413
    # nothing of the body was needed to decide, and the stream takes no more
    assert stream.buffered == len(head)
    with pytest.raises(StreamFailedError):
        stream.receive_data(b"x" * 65536)


def test_ten_megabyte_header_section_is_refused_with_the_buffer_bounded() -> None:
    stream = SipStream()
    stream.receive_data(b"INVITE sip:a@example.com SIP/2.0\r\n")
    chunk = b"X-Junk: " + b"j" * 1000 + b"\r\n"
    sent = 0
    with pytest.raises(MessageTooLargeError):
        while sent < 10 * 1024 * 1024:
            stream.receive_data(chunk)
            sent += len(chunk)
            assert stream.next_event() is NEED_DATA
    # refused after the first 64 KiB, not after 10 MB
    assert sent < DEFAULT_MAX_MESSAGE_SIZE + len(chunk)
    assert stream.buffered < DEFAULT_MAX_MESSAGE_SIZE + len(chunk) + 64


def test_ten_megabytes_in_one_read_fail_without_a_quadratic_scan() -> None:
    stream = SipStream()
    stream.receive_data(b"INVITE sip:a@example.com SIP/2.0\r\n" + b"X: y\r\n" * 1_500_000)
    with pytest.raises(TooManyHeadersError):
        stream.next_event()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_message_size": 0},
        {"max_body_size": -1},
        {"max_header_count": 0},
        {"max_line_length": 0},
    ],
)
def test_limits_must_be_positive(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        SipStream(**kwargs)


def test_limits_default_values_are_documented_ones() -> None:
    assert Limits() == Limits(65_535, 65_535, 128, 8_192)


def test_datagram_limits_apply_too() -> None:
    with pytest.raises(MessageTooLargeError):
        parse_datagram(options(1, body=SDP_150), Limits(max_message_size=100))
    with pytest.raises(BodyTooLargeError):
        parse_datagram(options(1, body=SDP_150), Limits(max_body_size=100))
    with pytest.raises(IncompleteMessageError, match="no complete header section"):
        parse_datagram(options(1)[:50])


def test_responses_are_framed_like_requests() -> None:
    stream = SipStream()
    stream.receive_data(
        msg(
            "SIP/2.0 200 OK",
            "Via: SIP/2.0/TLS peer.example.com;branch=z9hG4bK1",
            "From: <sip:ping@example.com>;tag=1",
            "To: <sip:edge.example.com>;tag=2",
            "Call-ID: c1@example.com",
            "CSeq: 1 OPTIONS",
            "Content-Length: 0",
        )
    )
    event = stream.next_event()
    assert isinstance(event, Response) and event.status_code == 200


@pytest.mark.parametrize(
    "start_line",
    [
        "SIP/2.0 20 OK",
        "SIP/2.0 099 Low",
        "sip:a@example.com OPTIONS SIP/2.0",
        "OPTIONS sip:a@example.com HTTP/1.1",
        "OPTIONS sip:a@example.com",
    ],
)
def test_malformed_start_lines(start_line: str) -> None:
    data = options(1).replace(b"OPTIONS sip:edge1.example.com SIP/2.0", start_line.encode())
    stream = SipStream()
    stream.receive_data(data)
    with pytest.raises(SipError) as caught:
        stream.next_event()
    assert type(caught.value) is MalformedStartLineError


def test_messages_before_a_bad_one_are_delivered_then_the_stream_fails() -> None:
    bad = options(3).replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    stream = SipStream()
    stream.receive_data(options(1) + options(2) + bad + options(4))
    first, second = stream.next_event(), stream.next_event()
    assert isinstance(first, Request) and isinstance(second, Request)
    assert (first.cseq.number, second.cseq.number) == (1, 2)
    with pytest.raises(UnsupportedVersionError, match=r"SIP/3\.0") as caught:
        stream.next_event()
    assert caught.value.status_hint == 505
    with pytest.raises(StreamFailedError) as again:
        stream.next_event()
    assert again.value.status_hint == 505
