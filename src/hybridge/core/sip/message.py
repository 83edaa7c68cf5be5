"""SIP requests and responses as frozen values, and their serialisation.

A message keeps each header line's bytes as received (``HeaderField.raw``, folding and
compact names included). Serialising writes those bytes back, so a relay that prepends a
Via or lowers Max-Forwards re-encodes only the lines it changed (RFC 3261 §16.6 asks a
proxy to leave the rest alone). On construction a message reads and checks the headers a
stateless proxy relies on (Via, Route, Record-Route, From, To, Call-ID, CSeq, Max-Forwards,
Content-Length, Contact) and exposes them parsed; the rest are opaque text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from hybridge.core.sip.errors import (
    CSeqMethodMismatchError,
    DuplicateHeaderError,
    InvalidHeaderValueError,
    MalformedStartLineError,
    MissingHeaderError,
)
from hybridge.core.sip.grammar import (
    CSeq,
    NameAddress,
    Via,
    is_token,
    parse_count,
    parse_cseq,
    parse_name_address,
    parse_via,
    split_list,
    validate_request_uri,
)
from hybridge.core.sip.header import HeaderField
from hybridge.core.sip.names import canonical_name

# Call-ID is compared, never interpreted, by a proxy: any non-empty run of visible
# characters is accepted (real UAs send '=' and other characters RFC 3261's "word" lacks).
_CALL_ID_RE = re.compile(r"[!-~\x80-\U0010ffff]+")
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_RESPONSE_COPIED = frozenset(_REQUIRED)
# RFC 3261 §20.22 puts no bound on Max-Forwards; RFC 4475 §3.1.2.4 treats 300 as an error
# and every implementation keeps it in one octet.
MAX_FORWARDS_LIMIT = 255
CONTENT_LENGTH_LIMIT = 2**31 - 1


_VIA, _ROUTE, _RECORD_ROUTE, _CONTACT, _SINGLE = range(5)
_KINDS = {
    "Via": _VIA,
    "Route": _ROUTE,
    "Record-Route": _RECORD_ROUTE,
    "Contact": _CONTACT,
    "Call-ID": _SINGLE,
    "CSeq": _SINGLE,
    "From": _SINGLE,
    "To": _SINGLE,
    "Max-Forwards": _SINGLE,
    "Content-Length": _SINGLE,
}


def _elements(name: str, value: str) -> list[str]:
    # values arrive stripped; without a comma there is one element (the common case)
    if value and "," not in value:
        return [value]
    return split_list(name, value)


def _call_id(value: str) -> str:
    if _CALL_ID_RE.fullmatch(value) is None:
        raise InvalidHeaderValueError("Call-ID", f"Call-ID {value!r} is empty or holds spaces")
    return value


def _from(value: str) -> NameAddress:
    return parse_name_address("From", value)


def _to(value: str) -> NameAddress:
    return parse_name_address("To", value)


def _max_forwards(value: str) -> int:
    return parse_count("Max-Forwards", value, MAX_FORWARDS_LIMIT)


def _content_length(value: str) -> int:
    return parse_count("Content-Length", value, CONTENT_LENGTH_LIMIT)


_SINGLE_PARSERS: dict[str, Callable[[str], object]] = {
    "Call-ID": _call_id,
    "CSeq": parse_cseq,
    "From": _from,
    "To": _to,
    "Max-Forwards": _max_forwards,
    "Content-Length": _content_length,
}


def _analyse(message: Any, method: str | None) -> None:
    """Check the headers a proxy relies on and set the message's parsed views.

    Headers are checked in message order, so the first bad one is the one named.
    """
    via: list[Via] = []
    route: list[NameAddress] = []
    record_route: list[NameAddress] = []
    seen: dict[str, Any] = {}
    for header in message.headers:
        name = header.name
        kind = _KINDS.get(name)
        if kind is None:
            continue
        value = header.value
        if kind == _SINGLE:
            if name in seen:
                raise DuplicateHeaderError(
                    name, f"{name} appears more than once; it may appear once"
                )
            seen[name] = _SINGLE_PARSERS[name](value)
        elif kind == _VIA:
            for element in _elements(name, value):
                via.append(parse_via(element))
        elif kind == _CONTACT:
            if value != "*":
                for element in _elements(name, value):
                    parse_name_address(name, element)
        else:
            target = route if kind == _ROUTE else record_route
            for element in _elements(name, value):
                target.append(parse_name_address(name, element, name_addr_only=True))
    for name in _REQUIRED:
        if name not in seen and not (name == "Via" and via):
            raise MissingHeaderError(name, f"the message has no {name} header; it must")
    cseq: CSeq = seen["CSeq"]
    if method is not None and cseq.method != method:
        raise CSeqMethodMismatchError(
            f"CSeq method {cseq.method!r} differs from the request method {method!r}"
        )
    length = seen.get("Content-Length")
    if length is not None and length != len(message.body):
        raise InvalidHeaderValueError(
            "Content-Length",
            f"Content-Length {length} differs from the body's {len(message.body)} bytes",
        )
    # Request and Response are frozen dataclasses without __slots__: the views are set in
    # their __dict__ once, here, and never change afterwards.
    message.__dict__.update(
        via=tuple(via),
        route=tuple(route),
        record_route=tuple(record_route),
        from_address=seen["From"],
        to_address=seen["To"],
        call_id=seen["Call-ID"],
        cseq=cseq,
        max_forwards=seen.get("Max-Forwards"),
        _framed=length is not None,
    )


class _MessageOps:
    """Header access and the proxy's edits, shared by ``Request`` and ``Response``."""

    __slots__ = ()
    headers: tuple[HeaderField, ...]
    body: bytes
    via: tuple[Via, ...]
    route: tuple[NameAddress, ...]
    record_route: tuple[NameAddress, ...]
    max_forwards: int | None
    _framed: bool

    @property
    def content_length(self) -> int:
        """The body's length in bytes (equal to Content-Length when the message has one)."""
        return len(self.body)

    def get(self, name: str) -> str | None:
        """The value of the first header called ``name`` (any case, compact or long), or None."""
        wanted = canonical_name(name).lower()
        for header in self.headers:
            if header.name.lower() == wanted:
                return header.value
        return None

    def get_all(self, name: str) -> tuple[str, ...]:
        """All values of header ``name``: list headers split at their commas, in order."""
        wanted = canonical_name(name).lower()
        out: list[str] = []
        for header in self.headers:
            if header.name.lower() == wanted:
                out.extend(header.values())
        return tuple(out)

    def _evolve(self, headers: tuple[HeaderField, ...], **views: object) -> Self:
        # The edits below change one header whose new value they have parsed and checked
        # themselves; the other views stay valid, so the full analysis is not run again.
        new = object.__new__(type(self))
        state = new.__dict__
        state.update(self.__dict__)
        state.update(views)
        state["headers"] = headers
        return new

    def _insert_before_first(self, header: HeaderField) -> tuple[HeaderField, ...]:
        for index, existing in enumerate(self.headers):
            if existing.name == header.name:
                return (*self.headers[:index], header, *self.headers[index:])
        return (header, *self.headers)

    def _drop_first_value(self, name: str) -> tuple[HeaderField, ...]:
        for index, existing in enumerate(self.headers):
            if existing.name == name:
                rest = split_list(name, existing.value)[1:]
                replacement = (HeaderField(name, ", ".join(rest)),) if rest else ()
                return (*self.headers[:index], *replacement, *self.headers[index + 1 :])
        raise MissingHeaderError(name, f"the message has no {name} header to remove")

    def with_via(self, value: str) -> Self:
        """A copy with Via ``value`` on top (RFC 3261 §16.6 step 8); other lines untouched.

        Raises ``InvalidHeaderValueError`` if ``value`` is not a Via value.
        """
        via = parse_via(value)
        headers = self._insert_before_first(HeaderField("Via", value))
        return self._evolve(headers, via=(via, *self.via))

    def without_top_via(self) -> Self:
        """A copy without the topmost Via value (a proxy relaying a response, §16.7 step 3).

        Raises ``MissingHeaderError`` when that was the only Via (the response is for us).
        """
        if len(self.via) < 2:
            raise MissingHeaderError("Via", "removing the only Via leaves no Via")
        return self._evolve(self._drop_first_value("Via"), via=self.via[1:])

    def with_max_forwards(self, value: int) -> Self:
        """A copy with Max-Forwards ``value`` (§16.6 step 3), replacing the line in place.

        Raises ``InvalidHeaderValueError`` outside 0..255.
        """
        if not 0 <= value <= MAX_FORWARDS_LIMIT:
            raise InvalidHeaderValueError(
                "Max-Forwards", f"Max-Forwards {value} is outside 0..{MAX_FORWARDS_LIMIT}"
            )
        header = HeaderField("Max-Forwards", str(value))
        for index, existing in enumerate(self.headers):
            if existing.name == "Max-Forwards":
                headers = (*self.headers[:index], header, *self.headers[index + 1 :])
                break
        else:
            headers = (*self.headers, header)
        return self._evolve(headers, max_forwards=value)

    def without_top_route(self) -> Self:
        """A copy without the topmost Route value (§16.4: the proxy's own loose route).

        Raises ``MissingHeaderError`` when there is no Route.
        """
        if not self.route:
            raise MissingHeaderError("Route", "the message has no Route to remove")
        return self._evolve(self._drop_first_value("Route"), route=self.route[1:])

    def with_record_route(self, value: str) -> Self:
        """A copy with Record-Route ``value`` on top (§16.6 step 4).

        Raises ``InvalidHeaderValueError`` unless ``value`` is ``<uri>;params``.
        """
        entry = parse_name_address("Record-Route", value, name_addr_only=True)
        headers = self._insert_before_first(HeaderField("Record-Route", value))
        return self._evolve(headers, record_route=(entry, *self.record_route))


@dataclass(frozen=True)
class Request(_MessageOps):
    """A SIP request (RFC 3261 §7.1). ``headers`` keep their order and raw bytes.

    Raises ``MalformedStartLineError`` for a method that is not a token or an invalid
    Request-URI, and the header errors of ``_analyse`` (``InvalidHeaderValueError``,
    ``MissingHeaderError``, ``DuplicateHeaderError``, ``CSeqMethodMismatchError``).
    """

    method: str
    uri: str
    headers: tuple[HeaderField, ...]
    body: bytes = b""
    via: tuple[Via, ...] = field(init=False, repr=False)
    route: tuple[NameAddress, ...] = field(init=False, repr=False)
    record_route: tuple[NameAddress, ...] = field(init=False, repr=False)
    from_address: NameAddress = field(init=False, repr=False)
    to_address: NameAddress = field(init=False, repr=False)
    call_id: str = field(init=False, repr=False)
    cseq: CSeq = field(init=False, repr=False)
    max_forwards: int | None = field(init=False, repr=False)
    _framed: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_token(self.method):
            raise MalformedStartLineError(f"request method {self.method!r} is not a token")
        problem = validate_request_uri(self.uri)
        if problem is not None:
            raise MalformedStartLineError(f"Request-URI {self.uri!r} is invalid: {problem}")
        _analyse(self, self.method)

    def start_line(self) -> bytes:
        """``Method SP Request-URI SP SIP/2.0`` as bytes (no CRLF)."""
        return f"{self.method} {self.uri} SIP/2.0".encode()

    def response(
        self,
        status_code: int,
        reason: str,
        *,
        to_tag: str | None = None,
        headers: tuple[HeaderField, ...] = (),
    ) -> Response:
        """A response to this request, built as RFC 3261 §8.2.6.2 says.

        Via (all values, in order), From, To, Call-ID and CSeq are copied as received; a
        ``to_tag`` is added to To when To has none (§8.2.6.2: not on a 100 Trying). Extra
        ``headers`` follow, then ``Content-Length: 0``. Raises what ``Response`` raises.
        """
        copied = [h for h in self.headers if h.name in _RESPONSE_COPIED]
        if to_tag is not None and self.to_address.tag is None and status_code != 100:
            copied = [
                HeaderField("To", f"{h.value};tag={to_tag}") if h.name == "To" else h
                for h in copied
            ]
        length = HeaderField("Content-Length", "0")
        return Response(status_code, reason, (*copied, *headers, length))


@dataclass(frozen=True)
class Response(_MessageOps):
    """A SIP response (RFC 3261 §7.2). ``reason`` is UTF-8 text, possibly empty.

    Raises ``MalformedStartLineError`` for a status outside 100..699 or a reason with CR/LF,
    and the header errors listed on ``Request``.
    """

    status_code: int
    reason: str
    headers: tuple[HeaderField, ...]
    body: bytes = b""
    via: tuple[Via, ...] = field(init=False, repr=False)
    route: tuple[NameAddress, ...] = field(init=False, repr=False)
    record_route: tuple[NameAddress, ...] = field(init=False, repr=False)
    from_address: NameAddress = field(init=False, repr=False)
    to_address: NameAddress = field(init=False, repr=False)
    call_id: str = field(init=False, repr=False)
    cseq: CSeq = field(init=False, repr=False)
    max_forwards: int | None = field(init=False, repr=False)
    _framed: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 100 <= self.status_code <= 699:
            raise MalformedStartLineError(f"status code {self.status_code} is outside 100..699")
        if "\r" in self.reason or "\n" in self.reason:
            raise MalformedStartLineError(f"reason phrase {self.reason!r} holds CR or LF")
        _analyse(self, None)

    def start_line(self) -> bytes:
        """``SIP/2.0 SP Status-Code SP Reason-Phrase`` as bytes (no CRLF)."""
        return f"SIP/2.0 {self.status_code} {self.reason}".encode("utf-8", "surrogateescape")


Message = Request | Response


def serialize(message: Message) -> bytes:
    """The message's wire form: start line, each header's raw bytes, CRLF, body.

    A message without Content-Length (read from a datagram) gains one, since every message
    on a stream must carry it (RFC 3261 §18.3).
    """
    lines = [message.start_line()]
    lines.extend(header.raw for header in message.headers)
    if not message._framed:
        lines.append(b"Content-Length: %d" % len(message.body))
    lines.append(b"")
    lines.append(message.body)
    return b"\r\n".join(lines)
