"""``scan_head`` with one regex per header section: the fast path's views, fast.

A relay sees few *shapes* of header section: the same peer software sends the same header
names in the same order, message after message; only the values change. ``HeadScanner``
compiles one regex per shape (the start line, then each header line by its name, with the
value pattern ``core.sip.lazy`` checks for that header), and scans a section with a single
``fullmatch``: the line-by-line checks of ``scan_head`` done by the regex engine in one
call instead of one Python step and one regex per line.

Equal by construction: a shape's regex is built from the very patterns ``scan_head`` uses
line by line, its names matched literally, and the checks that do not depend on the values
(a duplicate From, a missing Call-ID, a Route, a name that is not a token) are made once
when the shape is compiled. So for a section of that shape its regex matches exactly when
``scan_head`` returns a view, and the two views are equal (property-tested in
``tests/unit/core/sip/test_sip_shapes.py``); a section the regex does not match is not
plain, and the scanner says None, as ``scan_head`` would.

Bounds, because the shapes come from peers: at most ``max_shapes`` are kept (the oldest is
forgotten first), none with more than 64 header lines or 1 KiB of names; a shape is
compiled only once it has been seen ``compile_after`` times, and compiling spends a credit
(``max_shapes // 2`` to start with) that scanning earns back slowly: one per
``scans_per_compile`` scans that were not of a recent section's shape, at most
``max_shapes`` in hand. A compile costs a few milliseconds; so a peer sending a new shape
with every message gets the line-by-line scan, and makes the edge compile at most once per
``scans_per_compile`` of its messages — a few microseconds each — never once per message.

Why by hand: nothing on the package index compiles SIP header layouts; this is a cache
over ``re`` and the patterns of ``core.sip.patterns``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hybridge.core.sip.lazy import LazyHead, scan_head
from hybridge.core.sip.patterns import (
    KIND_CONTENT_LENGTH,
    KIND_MAX_FORWARDS,
    KIND_RECORD_ROUTE,
    KIND_TO,
    KIND_UNSUPPORTED,
    KIND_VIA,
    KINDS,
    OTHER_VALUE,
    REQUEST_LINE,
    REQUIRED,
    SINGLE,
    STATUS_LINE,
    TOKEN_RE,
    WS,
    header_line,
    header_value,
)

#: Shapes kept at once (each a compiled regex of a few kilobytes).
DEFAULT_MAX_SHAPES = 128
#: Sightings of a shape before it is compiled (one-off shapes never are).
DEFAULT_COMPILE_AFTER = 3
#: Scans that earn one compile once the initial credit is spent.
DEFAULT_SCANS_PER_COMPILE = 1000
# Sightings are counted for at most this many shapes not yet compiled, then start over.
_MAX_CANDIDATES = 1024
# A shape with more header lines, or longer names in all, is never kept (scanned line by
# line): real SIP stacks send a few dozen short names, and a key is held in memory.
_MAX_SHAPE_LINES = 64
_MAX_SHAPE_NAME_BYTES = 1024
# Each header line's name: what comes before its first colon (a line without a colon gives
# the whole line, which makes no shape: a header line needs a colon).
_NAMES_RE: Final = re.compile(rb"\r\n([^:\r\n]*)")
# Shapes tried before a section's key is computed, for requests and for responses each (a
# connection's requests and responses alternate; a few shapes make up most of the traffic).
_RECENT = 3
_NO_GROUP = rb"(?P<%s>(?!))?"  # a named group that never matches: None in every view

Key = tuple[bool, tuple[bytes, ...]]


@dataclass(frozen=True, slots=True)
class Shape:
    """One compiled shape: its regex and the line indexes ``LazyHead`` reports for it."""

    regex: re.Pattern[bytes]
    response: bool
    first_via: int
    second_via: bool
    max_forwards_index: int
    first_record_route: int

    def view(self, head: bytes, found: re.Match[bytes]) -> LazyHead:
        """The ``LazyHead`` of ``head``, which ``regex`` matched as ``found``."""
        view = LazyHead()
        view.lines = head.split(b"\r\n")
        if self.response:
            view.status = int(found.group("status"))
            view.method = view.uri = b""
        else:
            view.status = 0
            view.method, view.uri = found.group("method", "uri")
        view.via_value, view.via_host, port, view.via_branch, forwards, tag, length = found.group(
            "via_value",
            "via_host",
            "via_port",
            "via_branch",
            "max_forwards",
            "to_tag",
            "content_length",
        )
        view.via_port = int(port) if port is not None else None
        view.max_forwards = int(forwards) if forwards is not None else None
        view.to_tag = bool(tag)
        view.content_length = int(length) if length is not None else None
        view.first_via = self.first_via
        view.second_via = self.second_via
        view.max_forwards_index = self.max_forwards_index
        view.first_record_route = self.first_record_route
        return view


def shape_key(head: bytes) -> Key:
    """What makes two header sections one shape: a response or not, and the header names
    as written (case, compact form and spaces before the colon included)."""
    return head[:8] == b"SIP/2.0 ", tuple(_NAMES_RE.findall(head))


def compile_shape(key: Key) -> Shape | None:
    """The ``Shape`` of sections with ``key``, or None when no such section is plain.

    None for a name that is not a token, a Route or Proxy-Require, a duplicate of a
    single-valued header, or a missing Via, From, To, Call-ID or CSeq: ``scan_head``
    refuses every section with one of these, whatever its values.
    """
    response, names = key
    parts = [STATUS_LINE if response else REQUEST_LINE]
    seen: set[int] = set()
    first_via = max_forwards_index = first_record_route = -1
    second_via = False
    for index, raw in enumerate(names, 1):
        name = raw.rstrip(b" \t")
        kind = KINDS.get(name.lower())
        if kind is None:
            # any other header (lazy.OTHER_LINE): a token name, none of the known ones
            if TOKEN_RE.fullmatch(name) is None:
                return None
            parts.append(rb"\r\n" + re.escape(name) + WS + rb":" + OTHER_VALUE)
            continue
        if kind == KIND_UNSUPPORTED or (kind in SINGLE and kind in seen):
            return None
        seen.add(kind)
        first = kind == KIND_VIA and first_via < 0
        if kind == KIND_VIA:
            if first:
                first_via = index
            else:
                second_via = True
        elif kind == KIND_MAX_FORWARDS:
            max_forwards_index = index
        elif kind == KIND_RECORD_ROUTE and first_record_route < 0:
            first_record_route = index
        value = header_value(kind, first_via=first, request=not response)
        parts.append(rb"\r\n" + header_line(re.escape(name), value))
    if first_via < 0 or not seen >= REQUIRED:
        return None
    # the groups a view reads, present (and None) when the shape has no such header
    for kind, group in (
        (KIND_MAX_FORWARDS, b"max_forwards"),
        (KIND_CONTENT_LENGTH, b"content_length"),
        (KIND_TO, b"to_tag"),
    ):
        if kind not in seen:
            parts.append(_NO_GROUP % group)
    return Shape(
        regex=re.compile(b"".join(parts)),
        response=response,
        first_via=first_via,
        second_via=second_via,
        max_forwards_index=max_forwards_index,
        first_record_route=first_record_route,
    )


class HeadScanner:
    """``scan_head`` that learns the shapes it sees (see the module docstring for bounds).

    ``scan(head)`` returns what ``scan_head(head)`` returns (a view equal field by field, or
    None). Not thread-safe: one per event loop.
    """

    __slots__ = (
        "_candidates",
        "_compile_after",
        "_compiles",
        "_credit",
        "_max_shapes",
        "_recent",
        "_scans_per_compile",
        "_shapes",
        "_since_credit",
    )

    def __init__(
        self,
        *,
        max_shapes: int = DEFAULT_MAX_SHAPES,
        compile_after: int = DEFAULT_COMPILE_AFTER,
        scans_per_compile: int = DEFAULT_SCANS_PER_COMPILE,
    ) -> None:
        if max_shapes < 1 or compile_after < 1 or scans_per_compile < 1:
            raise ValueError(
                f"max_shapes {max_shapes!r}, compile_after {compile_after!r} and "
                f"scans_per_compile {scans_per_compile!r} must each be at least 1"
            )
        self._max_shapes = max_shapes
        self._compile_after = compile_after
        self._scans_per_compile = scans_per_compile
        self._shapes: dict[Key, Shape | None] = {}
        self._candidates: dict[Key, int] = {}
        self._credit = max(1, max_shapes // 2)
        self._since_credit = 0
        self._compiles = 0
        # the shapes most recently found by key, requests' and responses' apart
        self._recent: dict[bool, list[Shape]] = {False: [], True: []}

    @property
    def shapes(self) -> int:
        """How many shapes are kept (compiled, or known never to be plain)."""
        return len(self._shapes)

    @property
    def compiles(self) -> int:
        """How many shapes were compiled since this scanner was made."""
        return self._compiles

    def scan(self, head: bytes) -> LazyHead | None:
        """The lazy view of ``head``, or None when it is not plain; never raises."""
        recent = self._recent[head[:8] == b"SIP/2.0 "]
        for shape in recent:
            # Most sections have the shape of one just seen: its regex, matching, proves the
            # shape (names are matched literally, line by line, to the end).
            found = shape.regex.fullmatch(head)
            if found is not None:
                if shape is not recent[0]:
                    recent.remove(shape)
                    recent.insert(0, shape)
                return shape.view(head, found)
        self._since_credit += 1
        if self._since_credit >= self._scans_per_compile:
            self._since_credit = 0
            self._credit = min(self._credit + 1, self._max_shapes)
        key = shape_key(head)
        if key not in self._shapes and not self._learn(key):
            return scan_head(head)
        known = self._shapes[key]
        if known is None:
            return None
        found = known.regex.fullmatch(head)
        if found is None:
            return None  # this shape, a value the fast path does not take
        if known not in recent:
            recent.insert(0, known)
            del recent[_RECENT:]
        return known.view(head, found)

    def _learn(self, key: Key) -> bool:
        # True when ``key`` is now in ``_shapes`` (compiled, or known never to be plain);
        # False: not compiled (yet), the caller scans line by line.
        names = key[1]
        if len(names) > _MAX_SHAPE_LINES or sum(map(len, names)) > _MAX_SHAPE_NAME_BYTES:
            return False
        seen = self._candidates.get(key, 0) + 1
        if seen < self._compile_after or self._credit < 1:
            if len(self._candidates) >= _MAX_CANDIDATES:
                self._candidates.clear()
            self._candidates[key] = seen
            return False
        self._candidates.pop(key, None)
        self._credit -= 1
        self._compiles += 1
        shape = compile_shape(key)
        if len(self._shapes) >= self._max_shapes:
            forgotten = self._shapes.pop(next(iter(self._shapes)))
            for recent in self._recent.values():
                if forgotten in recent:
                    recent.remove(forgotten)
        self._shapes[key] = shape
        return True
