"""A lazy view of a header section: what a stateless relay reads, found without a full parse.

``scan_head(head)`` looks at one header section (bytes, without its final CRLFCRLF) and
returns a ``LazyHead`` — the start line, the index of each header line a relay edits or
reads, the top Via's sent-by and branch, Max-Forwards, the To tag, Content-Length — or
``None`` when the section is anything but plain. The relay's fast path
(``hybridge.edge.relay``) splices bytes into ``LazyHead.lines`` instead of building a
``Request``; on ``None`` it falls back to the full codec (``parse_head`` and
``Request``/``Response``), which stays the reference. ``core.sip.shapes.HeadScanner`` gives
the same views faster, with one regex per header section built from the same patterns.

The rule that keeps the two paths equal: every check here accepts a *subset* of what the
full codec accepts. Each pattern (``core.sip.patterns``) is a narrower copy of its
counterpart in ``grammar.py``/``section.py`` (single SP where the grammar allows LWS, token
characters where it allows more, one value per line where it allows comma lists), and every
header the full codec checks (Via, Route, Record-Route, Contact, From, To, Call-ID, CSeq,
Max-Forwards, Content-Length) is checked here too, or makes the scan return ``None``. So a
section scanned here would also be accepted by the full codec, with the same values
(property-tested in ``tests/unit/core/sip/test_sip_lazy.py``), and the relay's two paths
give byte-identical output (``tests/unit/edge/test_relay_fast.py``). Anything unusual —
folding, lists on one line, quoted display names with escapes, LWS before a parameter, a
Route or Proxy-Require, an RFC 2543 branch — is ``None``: correctness first, the fast path
only for the common shape.

Why by hand: no SIP library on the package index offers a lazy, byte-splicing view (see
``hybridge.core.sip``'s docstring for the survey), and the full parse builds a dozen
objects per message, which is most of the relay's time.
"""

from __future__ import annotations

import re
from typing import Final

from hybridge.core.sip.patterns import (
    KIND_CALL_ID,
    KIND_CONTACT,
    KIND_CONTENT_LENGTH,
    KIND_CSEQ,
    KIND_FROM,
    KIND_MAX_FORWARDS,
    KIND_RECORD_ROUTE,
    KIND_TO,
    KIND_VIA,
    KINDS,
    OTHER_LINE,
    REQUEST_LINE,
    REQUIRED,
    SINGLE,
    STATUS_LINE,
    header_line,
    header_value,
)

_REQUEST_LINE_RE: Final = re.compile(REQUEST_LINE)
_STATUS_LINE_RE: Final = re.compile(STATUS_LINE)


def _alternative(kind: int, group: bytes) -> bytes:
    names = b"|".join(re.escape(n) for n, k in KINDS.items() if k == kind)
    value = header_value(kind, first_via=kind == KIND_VIA)
    return rb"(?P<" + group + rb">" + header_line(rb"(?i:" + names + rb")", value) + rb")"


# One header line, whole, for ``scan_head``: one alternative per header kind, each wrapped
# in a group of its own so ``Match.lastindex`` names the kind. A value the full codec might
# refuse matches no alternative (never "any other header": that one excludes the names
# above), so the line, and the scan, are refused. Route and Proxy-Require have no
# alternative: a line with either refuses the scan.
_KIND_GROUPS = (
    (KIND_VIA, b"k_via"),
    (KIND_MAX_FORWARDS, b"k_max_forwards"),
    (KIND_FROM, b"k_from"),
    (KIND_TO, b"k_to"),
    (KIND_CALL_ID, b"k_call_id"),
    (KIND_CSEQ, b"k_cseq"),
    (KIND_CONTENT_LENGTH, b"k_content_length"),
    (KIND_CONTACT, b"k_contact"),
    (KIND_RECORD_ROUTE, b"k_record_route"),
)
_LINE_RE: Final = re.compile(
    b"|".join(
        [*(_alternative(k, g) for k, g in _KIND_GROUPS), rb"(?P<k_other>" + OTHER_LINE + b")"]
    )
)
# ``Match.lastindex`` -> kind (-1: any other header)
_KIND_OF_GROUP: Final = {_LINE_RE.groupindex[g.decode()]: k for k, g in _KIND_GROUPS}
_KIND_OF_GROUP[_LINE_RE.groupindex["k_other"]] = -1


class LazyHead:
    """The parts of one header section a stateless relay uses, with their line indexes.

    ``lines[0]`` is the start line, ``lines[1:]`` the header lines as received. Indexes are
    into ``lines``; -1 means absent. For a request ``method``/``uri`` are set and
    ``status`` is 0; for a response ``status`` is set and ``method`` is ``b""``.
    ``via_host``/``via_port``/``via_branch`` are the top Via's sent-by and branch exactly as
    ``grammar.Via`` holds them (``via_port`` None when the Via has no port).
    ``content_length`` is the Content-Length value (None when the section has none).
    """

    __slots__ = (
        "content_length",
        "first_record_route",
        "first_via",
        "lines",
        "max_forwards",
        "max_forwards_index",
        "method",
        "second_via",
        "status",
        "to_tag",
        "uri",
        "via_branch",
        "via_host",
        "via_port",
        "via_value",
    )

    lines: list[bytes]
    method: bytes
    uri: bytes
    status: int
    first_via: int
    second_via: bool
    via_value: bytes
    via_host: bytes
    via_port: int | None
    via_branch: bytes | None
    max_forwards: int | None
    max_forwards_index: int
    first_record_route: int
    to_tag: bool
    content_length: int | None

    def fields(self) -> dict[str, object]:
        """Every field by name (for comparing two views in tests and logs)."""
        return {name: getattr(self, name) for name in self.__slots__}


def scan_head(head: bytes) -> LazyHead | None:
    """The lazy view of ``head`` (a header section without its CRLFCRLF), or None.

    None means "not plain enough for the fast path": the caller parses the message with the
    full codec, which then accepts it or raises the precise error. Never raises. One regex
    per line: ``core.sip.shapes.HeadScanner`` does the same with one per section.
    """
    lines = head.split(b"\r\n")
    count = len(lines) - 1
    if not count:
        return None
    # No bare CR or LF can hide in a line: no pattern here matches either.
    view = LazyHead()
    view.lines = lines
    start = lines[0]
    if start[:8] == b"SIP/2.0 ":
        status_line = _STATUS_LINE_RE.fullmatch(start)
        if status_line is None:
            return None
        view.status = int(status_line.group("status"))
        view.method = view.uri = b""
    else:
        request_line = _REQUEST_LINE_RE.fullmatch(start)
        if request_line is None:
            return None
        view.status = 0
        view.method, view.uri = request_line.group("method", "uri")
    match = _LINE_RE.fullmatch
    kinds = _KIND_OF_GROUP
    seen: set[int] = set()
    first_via = first_record_route = max_forwards_index = -1
    second_via = to_tag = False
    max_forwards: int | None = None
    content_length: int | None = None
    cseq_method = b""
    for index in range(1, count + 1):
        line = match(lines[index])
        if line is None:
            return None
        kind = kinds[line.lastindex]  # type: ignore[index]  # every alternative is a group
        if kind < 0:
            continue  # opaque: the full codec checks nothing more than its line shape
        if kind in SINGLE:
            if kind in seen:
                return None  # a duplicate: the full codec names it
            seen.add(kind)
            if kind == KIND_TO:
                to_tag = bool(line.group("to_tag"))
            elif kind == KIND_CSEQ:
                cseq_method = line.group("cseq_method")
            elif kind == KIND_MAX_FORWARDS:
                max_forwards = int(line.group("max_forwards"))
                max_forwards_index = index
            elif kind == KIND_CONTENT_LENGTH:
                content_length = int(line.group("content_length"))
        elif kind == KIND_VIA:
            if first_via < 0:
                first_via = index
                view.via_value, view.via_host, port, view.via_branch = line.group(
                    "via_value", "via_host", "via_port", "via_branch"
                )
                view.via_port = int(port) if port is not None else None
            else:
                second_via = True
        elif kind == KIND_RECORD_ROUTE and first_record_route < 0:
            first_record_route = index
    if first_via < 0 or not seen >= REQUIRED:
        return None  # a required header is missing: the full codec names it
    if view.status == 0 and cseq_method != view.method:
        return None  # §8.1.1.5 mismatch: the full codec names it
    view.first_via = first_via
    view.second_via = second_via
    view.max_forwards = max_forwards
    view.max_forwards_index = max_forwards_index
    view.first_record_route = first_record_route
    view.to_tag = to_tag
    view.content_length = content_length
    return view
