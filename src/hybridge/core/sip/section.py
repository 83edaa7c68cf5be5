"""The header section of a SIP message: its limits, its start line, its header lines.

Shared by the stream framer and the datagram parser. The limits are checked by a scanner
that looks at each byte once, in order, whatever the read sizes, so a message fed one byte
at a time fails with the same error as the same message fed whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hybridge.core.sip.errors import (
    BodyTooLargeError,
    DuplicateHeaderError,
    HeaderLineTooLongError,
    MalformedHeaderError,
    MalformedStartLineError,
    MessageTooLargeError,
    TooManyHeadersError,
    UnsupportedVersionError,
)
from hybridge.core.sip.grammar import TOKEN_BYTES_RE, parse_count
from hybridge.core.sip.header import HeaderField
from hybridge.core.sip.message import (
    CONTENT_LENGTH_LIMIT,
    Message,
    Request,
    Response,
)
from hybridge.core.sip.names import CANONICAL_NAMES

# Defaults, and what other servers use:
# - Kamailio's receive buffer is BUF_SIZE = 65535 (src/core/config.h: "preferably set low
#   to avoid terror of excessively huge messages"; SER's tcp_conn.h had TCP_BUF_SIZE 65535).
#   RFC 3261 §18.1.1 keeps UDP messages under 1300 bytes (else TCP) but sets no stream
#   limit. 64 KiB holds SDP with many ICE candidates and multipart bodies.
DEFAULT_MAX_MESSAGE_SIZE: Final = 65_535
# - No separate body limit by default: the message limit bounds it. Set it lower to answer
#   413 rather than 513 for large bodies.
DEFAULT_MAX_BODY_SIZE: Final = 65_535
# - Apache LimitRequestFields 100; RFC 4475's longreq needs 45 lines, a call through many
#   proxies a few dozen Via and Record-Route lines.
DEFAULT_MAX_HEADER_COUNT: Final = 128
# - Apache LimitRequestFieldSize/LimitRequestLine 8190, nginx large_client_header_buffers 8k,
#   h11 max_incomplete_event_size 16 KiB for a whole header section.
DEFAULT_MAX_LINE_LENGTH: Final = 8_192

_CRLF = b"\r\n"
# One header line without folding: token name, HCOLON, value without trailing LWS, anchored
# at line starts; applied to the header lines only (not the start line).
_HEADER_LINE_RE = re.compile(
    r"^([A-Za-z0-9.!%*_+`'~-]+)[ \t]*:[ \t]*((?:[^\r\n]*[^\r\n \t])?)[ \t]*(?:\r\n|\Z)",
    re.MULTILINE,
)


#: ``(method, uri)`` of a request line or ``(status, reason)`` of a status line
StartLine = tuple[str, str] | tuple[int, str]


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits on one message. Each must be positive; see the module defaults."""

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")


class LineScanner:
    """Checks line lengths and the line count of a header section as its bytes arrive.

    Lines are checked in byte order and each byte is looked at once, so a message fed one
    byte at a time fails with the same error as the same message fed whole, in linear time.
    """

    __slots__ = ("_count", "_line_start", "_searched")

    def __init__(self) -> None:
        self._line_start = 0
        self._searched = 0
        self._count = -1  # the start line is not a header line

    def scan(self, data: bytes | bytearray, end: int, limits: Limits) -> None:
        """Check ``data[:end]``; raise ``HeaderLineTooLongError`` or ``TooManyHeadersError``."""
        position = self._searched
        while True:
            newline = data.find(_CRLF, position, end)
            stop = end if newline < 0 else newline
            if stop - self._line_start > limits.max_line_length:
                line = bytes(data[self._line_start : self._line_start + 40])
                raise HeaderLineTooLongError(
                    f"a header-section line is over {limits.max_line_length} bytes ({line!r}...)"
                )
            if newline < 0:
                # a CR at the end may be the first half of the next CRLF
                self._searched = max(self._line_start, end - 1)
                return
            self._count += 1
            if self._count > limits.max_header_count:
                raise TooManyHeadersError(
                    f"the header section has more than {limits.max_header_count} lines"
                )
            self._line_start = position = newline + 2


def check_head(
    data: bytes | bytearray, end: int | None, scanner: LineScanner, limits: Limits
) -> None:
    """Apply the header-section limits to ``data``, whose header section ends at ``end``
    (index of its CRLFCRLF) or has not ended yet (None)."""
    known = len(data) if end is None else end + 2
    cap = limits.max_message_size + 1
    if (
        end is not None
        and end + 4 <= limits.max_message_size
        and data.count(_CRLF, 0, end) <= limits.max_header_count
    ):
        # Fast path for the common case: a complete header section within the limits. A
        # section no longer than the line limit cannot hold a line over it.
        if end <= limits.max_line_length:
            return
        if max(map(len, bytes(data[:end]).split(_CRLF))) <= limits.max_line_length:
            return
    scanner.scan(data, min(known, cap), limits)
    if (len(data) if end is None else end + 4) > limits.max_message_size:
        raise MessageTooLargeError(
            f"the header section is over the {limits.max_message_size}-byte message limit"
        )


def _parse_start_line(line: bytes) -> StartLine:
    """Return ``(method, uri)`` for a request line or ``(status, reason)`` for a status line.

    Raises ``MalformedStartLineError`` or ``UnsupportedVersionError``.
    """
    if b"\r" in line or b"\n" in line:
        raise MalformedStartLineError(f"start line {line[:80]!r} holds a bare CR or LF")
    if line.startswith(b"SIP/2.0 "):
        code, _, reason = line[8:].partition(b" ")
        # RFC 3261 §25.1: Status-Code = 3DIGIT (RFC 4475 §3.1.2.19's 4294967301 is refused).
        if len(code) != 3 or not code.isdigit() or code.startswith(b"0"):
            raise MalformedStartLineError(f"status line {line[:80]!r} has no 3-digit status")
        return int(code), reason.decode("utf-8", "surrogateescape")
    parts = line.split(b" ")
    # RFC 3261 §7.1: elements separated by single SP, no other LWS (RFC 4475 §3.1.2.8-10).
    if len(parts) != 3:
        if line[:4].upper() == b"SIP/" and b" " in line:
            version = line.partition(b" ")[0].decode("latin-1")
            raise UnsupportedVersionError(f"SIP version {version!r} is not supported; SIP/2.0 is")
        raise MalformedStartLineError(
            f"start line {line[:80]!r} is not 'METHOD SP Request-URI SP SIP/2.0'"
            " or 'SIP/2.0 SP code SP reason'"
        )
    method, uri, version = (part.decode("utf-8", "surrogateescape") for part in parts)
    if version != "SIP/2.0":
        major, dot, minor = version[4:].partition(".")
        if version[:4].upper() == "SIP/" and dot and major.isdigit() and minor.isdigit():
            raise UnsupportedVersionError(f"SIP version {version!r} is not supported; SIP/2.0 is")
        raise MalformedStartLineError(f"start line {line[:80]!r} does not end in SIP/2.0")
    return method, uri


def _parse_headers(lines: list[bytes], folded: bool) -> tuple[list[HeaderField], int | None]:
    """Turn header lines into fields, unfolding continuation lines (RFC 3261 §7.3.1).

    Returns the fields and the Content-Length, which framing needs before the body (None
    when absent). Raises ``MalformedHeaderError``, ``DuplicateHeaderError`` or
    ``InvalidHeaderValueError`` (Content-Length only; other values are checked by the
    message).
    """
    fields: list[HeaderField] = []
    content_length: int | None = None
    index, total = 0, len(lines)
    while index < total:
        line = lines[index]
        index += 1
        name, colon, rest = line.partition(b":")
        # HCOLON = *( SP / HTAB ) ":" SWS  (RFC 4475 §3.1.1.1 writes "TO :")
        name = name.rstrip(b" \t")
        if not colon or TOKEN_BYTES_RE.fullmatch(name) is None:
            if line[:1] in (b" ", b"\t"):
                raise MalformedHeaderError(f"continuation line {line[:80]!r} follows no header")
            raise MalformedHeaderError(f"header line {line[:80]!r} is not 'name: value'")
        raw = line
        value = rest.strip(b" \t")
        while folded and index < total and lines[index][:1] in (b" ", b"\t"):
            # RFC 3261 §7.3.1: a folded line is equivalent to a single SP.
            continuation = lines[index].strip(b" \t")
            raw = raw + _CRLF + lines[index]
            if continuation:
                value = value + b" " + continuation if value else continuation
            index += 1
        text = name.decode("ascii")
        canonical = CANONICAL_NAMES.get(text.lower(), text)
        decoded = value.decode("utf-8", "surrogateescape")
        fields.append(HeaderField._from_wire(canonical, decoded, raw))
        if canonical == "Content-Length":
            if content_length is not None:
                raise DuplicateHeaderError(
                    "Content-Length", "Content-Length appears more than once; it may appear once"
                )
            content_length = parse_count("Content-Length", decoded, CONTENT_LENGTH_LIMIT)
    return fields, content_length


def parse_head(head: bytes) -> tuple[StartLine, list[HeaderField], int | None]:
    """Parse a header section (without its final CRLFCRLF).

    Returns the start line, the header fields and the Content-Length (None when absent).
    Raises ``MalformedStartLineError``, ``UnsupportedVersionError``, ``MalformedHeaderError``,
    ``DuplicateHeaderError`` or ``InvalidHeaderValueError`` (Content-Length).
    """
    line_ends = head.count(_CRLF)
    if head.count(b"\r") != line_ends or head.count(b"\n") != line_ends:
        first = head.split(_CRLF, 1)[0]
        if b"\r" in first or b"\n" in first:
            raise MalformedStartLineError(f"start line {first[:80]!r} holds a bare CR or LF")
        raise MalformedHeaderError("the header section holds a bare CR or LF; lines end in CRLF")
    lines = head.split(_CRLF)
    start = _parse_start_line(lines[0])
    # A folded (continuation) line never matches the one-line pattern, so folding, like any
    # odd line, sends the section down the careful path.
    parsed = _parse_unfolded_headers(head, lines)
    if parsed is not None:
        return start, *parsed
    folded = b"\r\n " in head or b"\r\n\t" in head
    fields, content_length = _parse_headers(lines[1:], folded)
    return start, fields, content_length


def _parse_unfolded_headers(
    head: bytes, lines: list[bytes]
) -> tuple[list[HeaderField], int | None] | None:
    """The hot path: every header line matched by one regex call in C.

    Returns None when some line does not match (the careful ``_parse_headers`` then names
    it) or Content-Length needs checking for duplicates.
    """
    pairs = _HEADER_LINE_RE.findall(head[len(lines[0]) + 2 :].decode("utf-8", "surrogateescape"))
    if len(pairs) != len(lines) - 1:
        return None
    fields: list[HeaderField] = []
    content_length: str | None = None
    canonical_names = CANONICAL_NAMES
    from_wire = HeaderField._from_wire
    for (name, value), raw in zip(pairs, lines[1:], strict=True):
        canonical = canonical_names.get(name) or canonical_names.get(name.lower(), name)
        if canonical == "Content-Length":
            if content_length is not None:
                return None
            content_length = value
        fields.append(from_wire(canonical, value, raw))
    if content_length is None:
        return fields, None
    return fields, parse_count("Content-Length", content_length, CONTENT_LENGTH_LIMIT)


def build_message(start: StartLine, fields: list[HeaderField], body: bytes) -> Message:
    """Return the ``Request`` or ``Response``; raises what their constructors raise."""
    first, second = start
    if isinstance(first, int):
        return Response(first, second, tuple(fields), body)
    return Request(first, second, tuple(fields), body)


def check_body(head_length: int, content_length: int, limits: Limits) -> None:
    """Raise ``BodyTooLargeError`` or ``MessageTooLargeError`` before the body is read."""
    if content_length > limits.max_body_size:
        raise BodyTooLargeError(
            f"Content-Length {content_length} is over the {limits.max_body_size}-byte body limit"
        )
    if head_length + content_length > limits.max_message_size:
        raise MessageTooLargeError(
            f"the message ({head_length} + {content_length} bytes) is over the"
            f" {limits.max_message_size}-byte message limit"
        )
