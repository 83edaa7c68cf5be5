"""A sans-IO SIP message codec (RFC 3261) for a stateless proxy.

    stream = SipStream()            # limits are keyword arguments with documented defaults
    stream.receive_data(chunk)      # b"" when the peer closes
    event = stream.next_event()     # Request | Response | Ping | Pong | NEED_DATA | CLOSED
    frame = stream.next_frame()     # the same, with messages as unparsed Frames (relays)
    view = scan_head(frame.head)    # a lazy view for a relay's fast path, or None
    wire = serialize(request.with_via(our_via).with_max_forwards(request.max_forwards - 1))
    answer = serialize(request.response(483, "Too Many Hops", to_tag=tag))

The shape is h11's (``python-hyper/h11``): no sockets, bytes in, events out, named limits,
a dead stream after an error. ``parse_datagram`` frames one message from a datagram.

Why not a library: before writing this we ran the SIP parsers on PyPI against RFC 4475's
torture messages (15 valid, 21 invalid, transcribed in ``tests/unit/core/sip``) and a
typical INVITE, in a throwaway venv (Python 3.11, Nov 2026; rates are wall-clock on a
busy 2-core machine, so only their order matters):

- ``sipmessage`` 0.7.1: whole-message ``Message.parse`` only, no stream framing; rejects the
  valid wsinv and semiuri (no header folding); accepts 8 invalid messages (ncl's negative
  Content-Length, clerr's Content-Length beyond the datagram, scalarlg's overlarge CSeq,
  both CSeq method mismatches, bigcode's 10-digit status, multi01's and mcl01's duplicate
  CSeq/Call-ID/Content-Length); raises bare ``ValueError``/``KeyError``; ~5,100 INVITEs/s.
- ``sippy`` 2.5.0 (a B2BUA): whole-message only; fails wsinv with ``IndexError``; accepts 13
  of 21 invalid messages (lwsstart, trws, escruri, badvers, mismatch01, bigcode, ...);
  raises ``Exception``, ``UnboundLocalError``, ``ValueError``; ~9,400 INVITEs/s.
- ``pyVoIP`` 1.6.8: accepts 1 of 15 valid messages and fails a plain INVITE with a Route.

None frames a stream (Content-Length over TLS, RFC 3261 §18.3), none keeps the received
bytes of untouched headers for relaying, and none confines its failures to its own
exceptions, so this codec is written here. It accepts the 15 valid messages, refuses the
21 invalid ones with a named error (clerr as a datagram; on a stream it waits for the
body), and parses a typical INVITE about as fast as sippy while checking every header a
proxy reads (``bench/sip_parse.py``: 1.03x sippy per CPU-second on the shared 2-core
development machine, Nov 2026).

For a relay, ``SipStream.next_frame`` frames a message without parsing it (Content-Length
only, every limit still applied) and ``scan_head`` gives a lazy view of the few headers a
stateless proxy reads, accepting only a strict subset of what the full parse accepts; the
edge relays such messages by splicing bytes and parses the rest fully
(``bench/sip_parse.py``: about 4x the full path's messages per CPU-second, Nov 2026).
``shapes.HeadScanner`` gives the same views with one regex per header section, compiled
for each layout of header names it keeps seeing (``patterns`` holds the fast path's
grammar), and a ``SipStream`` given it as ``head_scanner`` scans each section while framing.
"""

from hybridge.core.sip.errors import (
    BodyTooLargeError,
    CSeqMethodMismatchError,
    DuplicateHeaderError,
    HeaderLineTooLongError,
    IncompleteMessageError,
    InvalidHeaderValueError,
    MalformedHeaderError,
    MalformedStartLineError,
    MessageTooLargeError,
    MissingContentLengthError,
    MissingHeaderError,
    SipError,
    StreamFailedError,
    TooManyHeadersError,
    UnsupportedVersionError,
)
from hybridge.core.sip.grammar import CSeq, NameAddress, Via
from hybridge.core.sip.header import HeaderField
from hybridge.core.sip.lazy import LazyHead, scan_head
from hybridge.core.sip.message import Message, Request, Response, serialize
from hybridge.core.sip.names import COMPACT_FORMS, LIST_HEADERS, canonical_name
from hybridge.core.sip.section import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_MESSAGE_SIZE,
    Limits,
)
from hybridge.core.sip.stream import (
    CLOSED,
    NEED_DATA,
    PING,
    PONG,
    Event,
    Frame,
    FrameEvent,
    Ping,
    Pong,
    SipStream,
    parse_datagram,
    parse_frame,
)

__all__ = [
    "CLOSED",
    "COMPACT_FORMS",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_HEADER_COUNT",
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "LIST_HEADERS",
    "NEED_DATA",
    "PING",
    "PONG",
    "BodyTooLargeError",
    "CSeq",
    "CSeqMethodMismatchError",
    "DuplicateHeaderError",
    "Event",
    "Frame",
    "FrameEvent",
    "HeaderField",
    "HeaderLineTooLongError",
    "IncompleteMessageError",
    "InvalidHeaderValueError",
    "LazyHead",
    "Limits",
    "MalformedHeaderError",
    "MalformedStartLineError",
    "Message",
    "MessageTooLargeError",
    "MissingContentLengthError",
    "MissingHeaderError",
    "NameAddress",
    "Ping",
    "Pong",
    "Request",
    "Response",
    "SipError",
    "SipStream",
    "StreamFailedError",
    "TooManyHeadersError",
    "UnsupportedVersionError",
    "Via",
    "canonical_name",
    "parse_datagram",
    "parse_frame",
    "scan_head",
    "serialize",
]
