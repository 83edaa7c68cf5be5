"""SIP message framing over a byte stream (TLS, TCP) and over datagrams, without I/O.

The shape is h11's: the caller feeds bytes with ``receive_data`` and pulls events with
``next_event``, which returns a ``Request``, a ``Response``, a keep-alive ``Ping``/``Pong``,
``NEED_DATA`` (feed more) or ``CLOSED`` (the peer closed cleanly between messages), or
raises a ``SipError``. After an error the stream is dead: every later call raises
``StreamFailedError`` and the caller closes the connection (there is no way to find the
next message boundary in a stream whose framing was wrong).

Every limit is enforced before the bytes it guards are buffered in full: a peer announcing
a 10 MB body is refused as soon as its header section ends, and a header section that never
ends is refused once it passes the message limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from hybridge.core.sip.errors import (
    IncompleteMessageError,
    MissingContentLengthError,
    SipError,
    StreamFailedError,
)
from hybridge.core.sip.header import HeaderField
from hybridge.core.sip.lazy import LazyHead
from hybridge.core.sip.message import Message, Request, Response
from hybridge.core.sip.section import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_MESSAGE_SIZE,
    Limits,
    LineScanner,
    StartLine,
    build_message,
    check_body,
    check_head,
    parse_head,
)

_CRLF = b"\r\n"
_END_OF_HEAD = b"\r\n\r\n"
# Content-Length (or its compact form l) on a line of its own, as ``next_frame`` reads it
# without a full parse; anything else about it (absent, twice, folded, not digits) takes
# the full parse, which names the problem.
_CONTENT_LENGTH_RE = re.compile(
    # anchored on the CRLF before the line: a literal prefix the regex engine searches for
    # quickly ("^" with MULTILINE tries every position); the name compares in any case
    rb"\r\n(?i:content-length|l)[ \t]*:[ \t]*([0-9]{1,10})[ \t]*(?=\r\n|\Z)"
)
_CONTENT_LENGTH_LIMIT = 2**31 - 1


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: ``next_event`` needs more bytes before it can return an event.
NEED_DATA: Final = _Sentinel("NEED_DATA")
#: The peer closed the stream cleanly, between messages.
CLOSED: Final = _Sentinel("CLOSED")


@dataclass(frozen=True, slots=True)
class Ping:
    """A CRLFCRLF keep-alive ping (RFC 5626 §3.5.1); a server answers it with ``PONG``."""


@dataclass(frozen=True, slots=True)
class Pong:
    """A CRLF keep-alive pong (RFC 5626 §3.5.1), seen by the side that sent a ping."""


#: The bytes that answer a ``Ping`` (RFC 5626 §3.5.1: a single CRLF).
PONG: Final = _CRLF
#: The bytes of a keep-alive ping.
PING: Final = _END_OF_HEAD

Event = Request | Response | Ping | Pong | _Sentinel


class Frame(NamedTuple):
    """One framed message, not parsed: its header section (without the final CRLFCRLF) and
    its body, as received. ``parse_frame`` turns it into a ``Request`` or ``Response``.
    ``view`` is the lazy view of ``head`` when the stream was given a ``head_scanner`` and
    the section is plain (``core.sip.lazy``), else None.

    (A NamedTuple, immutable like the codec's dataclasses, because one is made per message
    on the relay's hot path and a frozen dataclass's ``__init__`` costs several times more.)
    """

    head: bytes
    body: bytes
    view: LazyHead | None = None


FrameEvent = Frame | Ping | Pong | _Sentinel
# ``Frame(head, body, view)`` without the Python-level ``__new__`` a NamedTuple generates:
# the same tuple, made once per relayed message.
_new_frame: Final = tuple.__new__


class SipStream:
    """Frames SIP messages received on one stream connection (RFC 3261 §18.3).

    ``expect_pongs``: set on the side that opened the connection and sends keep-alive pings;
    a CRLF between messages is then a ``Pong``. Otherwise a lone CRLF between messages is
    skipped (RFC 3261 §7.5) and CRLFCRLF is a ``Ping``.

    Call ``next_event`` until it returns ``NEED_DATA`` after each ``receive_data``: limits
    are enforced there, as h11 does.

    ``head_scanner`` (``core.sip.shapes.HeadScanner.scan`` or ``core.sip.lazy.scan_head``):
    ``next_frame`` scans each header section with it, hands the view on in ``Frame.view``
    and, when there is one, takes Content-Length from it instead of searching for it.
    """

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        expect_pongs: bool = False,
        head_scanner: Callable[[bytes], LazyHead | None] | None = None,
    ) -> None:
        self.limits = Limits(max_message_size, max_body_size, max_header_count, max_line_length)
        # the limits as ``next_frame`` checks them inline
        self._max_message = max_message_size
        self._max_body = max_body_size
        self._max_lines = max_header_count
        self._short_head = min(max_line_length, max_message_size - 4)
        self._expect_pongs = expect_pongs
        self._head_scanner = head_scanner
        self._buffer = bytearray()
        self._scanner = LineScanner()
        self._searched = 0
        self._pending: tuple[StartLine, list[HeaderField], int, int] | None
        self._pending = None
        self._pending_frame: tuple[bytes, int, LazyHead | None] | None = None
        self._scanner_used = False
        self._eof = False
        self._error: SipError | None = None

    @property
    def buffered(self) -> int:
        """How many received bytes are held, not yet returned as events."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means the peer closed the stream.

        Raises ``StreamFailedError`` after an error or after the end of the stream.
        """
        if self._error is not None:
            raise StreamFailedError(
                f"the stream failed earlier ({self._error}); it accepts no more data",
                status_hint=self._error.status_hint,
            )
        if self._eof:
            raise StreamFailedError("data received after the end of the stream")
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_event(self) -> Event:
        """Return the next ``Request``, ``Response``, ``Ping``, ``Pong``, ``NEED_DATA`` or
        ``CLOSED``.

        Raises a ``SipError`` subclass for a message that breaks the grammar or a limit; the
        stream is then failed and every later call raises ``StreamFailedError``.
        """
        if self._error is not None:
            raise StreamFailedError(
                f"the stream failed earlier ({self._error}); close the connection",
                status_hint=self._error.status_hint,
            )
        try:
            return self._next()
        except SipError as error:
            self._error = error
            raise

    def _next(self) -> Event:
        buffer = self._buffer
        if self._pending is None:
            while buffer[:2] == _CRLF:
                if buffer[:4] == _END_OF_HEAD:
                    del buffer[:4]
                    return Ping()
                if len(buffer) < 4 and _END_OF_HEAD.startswith(buffer):
                    # "\r\n" or "\r\n\r": a pong, or the first half of a ping
                    if self._expect_pongs and len(buffer) == 2:
                        del buffer[:2]
                        return Pong()
                    return CLOSED if self._eof else NEED_DATA
                del buffer[:2]
                if self._expect_pongs:
                    return Pong()
            end = buffer.find(_END_OF_HEAD, max(0, self._searched - 3))
            if end < 0:
                self._searched = len(buffer)
                check_head(buffer, None, self._scanner, self.limits)
                if self._eof:
                    if not buffer:
                        return CLOSED
                    raise IncompleteMessageError(
                        f"the stream ended inside a header section ({len(buffer)} bytes)"
                    )
                return NEED_DATA
            check_head(buffer, end, self._scanner, self.limits)
            start, fields, content_length = parse_head(bytes(buffer[:end]))
            if content_length is None:
                raise MissingContentLengthError(
                    "the message has no Content-Length; on a stream it must (RFC 3261 §18.3)"
                )
            check_body(end + 4, content_length, self.limits)
            self._pending = (start, fields, end + 4, content_length)
        start, fields, head_length, content_length = self._pending
        total = head_length + content_length
        if len(buffer) < total:
            if self._eof:
                raise IncompleteMessageError(
                    f"the stream ended inside a body ({len(buffer) - head_length} of"
                    f" {content_length} bytes)"
                )
            return NEED_DATA
        body = bytes(buffer[head_length:total])
        del buffer[:total]
        self._pending = None
        self._searched = 0
        self._scanner = LineScanner()
        return build_message(start, fields, body)

    def next_frame(self) -> FrameEvent:
        """Like ``next_event``, but return a message as an unparsed ``Frame``.

        Framing reads only Content-Length (the full parse runs when it is not a single
        plain line) and applies every limit ``next_event`` applies, at the same points, so a
        relay can take the fast path (``core.sip.lazy``) and parse fully only when needed.
        A header section whose other lines are malformed is reported by ``parse_frame``, not
        here. Raises the framing and limit errors of ``next_event``; do not mix the two
        methods on one stream.
        """
        if self._error is not None:
            raise StreamFailedError(
                f"the stream failed earlier ({self._error}); close the connection",
                status_hint=self._error.status_hint,
            )
        try:
            return self._next_frame()
        except SipError as error:
            self._error = error
            raise

    def _next_frame(self) -> FrameEvent:
        # The hot path of a relay: a complete message in the buffer is framed in one pass,
        # with the limits checked inline where the common case is clearly within them (the
        # helpers of section.py, which say precisely what is wrong, run otherwise).
        buffer = self._buffer
        pending = self._pending_frame
        if pending is None:
            if not buffer:
                return CLOSED if self._eof else NEED_DATA
            if buffer[0] == 13 and buffer[:2] == _CRLF:
                keepalive = self._keepalive()
                if keepalive is not None:
                    return keepalive
            searched = self._searched
            end = buffer.find(_END_OF_HEAD, searched - 3 if searched > 3 else 0)
            if end < 0:
                self._searched = len(buffer)
                self._scanner_used = True
                check_head(buffer, None, self._scanner, self.limits)
                if self._eof:
                    if not buffer:
                        return CLOSED
                    raise IncompleteMessageError(
                        f"the stream ended inside a header section ({len(buffer)} bytes)"
                    )
                return NEED_DATA
            # check_head's own fast path: a section no longer than the line limit holds no
            # line over it
            if end > self._short_head or buffer.count(_CRLF, 0, end) > self._max_lines:
                check_head(buffer, end, self._scanner, self.limits)
            head = bytes(buffer[:end])
            view = None if self._head_scanner is None else self._head_scanner(head)
            if view is not None and view.content_length is not None:
                # the view's single Content-Length line (the full codec would read the same)
                content_length = view.content_length
            else:
                lengths = _CONTENT_LENGTH_RE.findall(head)
                # A folded Content-Length line never parses (its unfolded value holds a
                # space), so the full parse that follows refuses it whatever was framed here.
                if len(lengths) != 1:
                    content_length = self._full_content_length(head)
                else:
                    content_length = int(lengths[0])
            if content_length > _CONTENT_LENGTH_LIMIT:
                content_length = self._full_content_length(head)
            total = end + 4 + content_length
            if content_length > self._max_body or total > self._max_message:
                check_body(end + 4, content_length, self.limits)
            if len(buffer) >= total:
                # the whole message is here (the usual case): no pending state
                body = bytes(buffer[end + 4 : total]) if content_length else b""
                del buffer[:total]
                self._searched = 0
                if self._scanner_used:
                    self._scanner = LineScanner()
                    self._scanner_used = False
                return _new_frame(Frame, (head, body, view))
            pending = self._pending_frame = (head, content_length, view)
        head, content_length, view = pending
        total = len(head) + 4 + content_length
        if len(buffer) < total:
            if self._eof:
                raise IncompleteMessageError(
                    f"the stream ended inside a body ({len(buffer) - len(head) - 4} of"
                    f" {content_length} bytes)"
                )
            return NEED_DATA
        body = bytes(buffer[total - content_length : total]) if content_length else b""
        del buffer[:total]
        self._pending_frame = None
        self._searched = 0
        if self._scanner_used:
            self._scanner = LineScanner()
            self._scanner_used = False
        return _new_frame(Frame, (head, body, view))

    def _keepalive(self) -> FrameEvent | None:
        # The CRLF handling of ``_next``, for ``_next_frame``.
        buffer = self._buffer
        while buffer[:2] == _CRLF:
            if buffer[:4] == _END_OF_HEAD:
                del buffer[:4]
                return Ping()
            if len(buffer) < 4 and _END_OF_HEAD.startswith(buffer):
                if self._expect_pongs and len(buffer) == 2:
                    del buffer[:2]
                    return Pong()
                return CLOSED if self._eof else NEED_DATA
            del buffer[:2]
            if self._expect_pongs:
                return Pong()
        return None

    @staticmethod
    def _full_content_length(head: bytes) -> int:
        _start, _fields, content_length = parse_head(head)
        if content_length is None:
            raise MissingContentLengthError(
                "the message has no Content-Length; on a stream it must (RFC 3261 §18.3)"
            )
        return content_length


def parse_frame(frame: Frame) -> Message:
    """The ``Request`` or ``Response`` in ``frame``; raises what ``next_event`` raises."""
    start, fields, _length = parse_head(frame.head)
    return build_message(start, fields, frame.body)


def parse_datagram(data: bytes, limits: Limits | None = None) -> Message:
    """Parse one SIP message carried in a datagram (RFC 3261 §18.3).

    Content-Length may be absent (the body is the rest of the datagram); octets beyond it
    are discarded (RFC 4475 §3.1.1.8). Raises ``IncompleteMessageError`` when Content-Length
    exceeds the octets present (RFC 4475 §3.1.2.2), and the errors of ``SipStream``.
    """
    limits = limits or Limits()
    end = data.find(_END_OF_HEAD)
    check_head(data, None if end < 0 else end, LineScanner(), limits)
    if end < 0:
        raise IncompleteMessageError("the datagram holds no complete header section")
    start, fields, content_length = parse_head(data[:end])
    rest = data[end + 4 :]
    if content_length is None:
        content_length = len(rest)
    check_body(end + 4, content_length, limits)
    if content_length > len(rest):
        raise IncompleteMessageError(
            f"Content-Length {content_length} exceeds the {len(rest)} body bytes received"
        )
    return build_message(start, fields, rest[:content_length])
