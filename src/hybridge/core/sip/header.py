"""One header line of a SIP message: its name, its unfolded value, its bytes as received."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hybridge.core.sip.errors import InvalidHeaderValueError, MalformedHeaderError
from hybridge.core.sip.grammar import is_token, split_list
from hybridge.core.sip.names import LIST_HEADERS, canonical_name

# A header's raw bytes may hold CRLF only as folding: CRLF followed by SP or HTAB (§7.3.1).
_FOLDED_RAW_RE = re.compile(rb"[^\r\n]*(?:\r\n[ \t][^\r\n]*)*")


@dataclass(frozen=True)
class HeaderField:
    """One header line: canonical ``name``, unfolded ``value``, and ``raw`` bytes as sent.

    Build one with ``HeaderField("Via", "SIP/2.0/TLS edge.example.com;branch=z9hG4bK1")``;
    ``raw`` is then ``name: value``. Compact names expand (``v`` -> ``Via``). Raises
    ``MalformedHeaderError`` for a name that is not a token or raw bytes with a bare CR/LF,
    ``InvalidHeaderValueError`` for a value holding CR or LF.
    """

    name: str
    value: str
    raw: bytes = b""

    def __post_init__(self) -> None:
        if not is_token(self.name):
            raise MalformedHeaderError(f"header name {self.name!r} is not a token")
        object.__setattr__(self, "name", canonical_name(self.name))
        if "\r" in self.value or "\n" in self.value:
            raise InvalidHeaderValueError(
                self.name, f"{self.name} value {self.value!r} holds CR or LF"
            )
        if not self.raw:
            raw = f"{self.name}: {self.value}".encode("utf-8", "surrogateescape")
            object.__setattr__(self, "raw", raw)
        elif (b"\r" in self.raw or b"\n" in self.raw) and not _FOLDED_RAW_RE.fullmatch(self.raw):
            raise MalformedHeaderError(f"header line {self.raw!r} holds a bare CR or LF")

    @classmethod
    def _from_wire(cls, name: str, value: str, raw: bytes) -> HeaderField:
        # The stream's parser has already checked what __post_init__ checks (token name,
        # canonical spelling, CRLF only as folding); skip the second pass on the hot path.
        # (No __slots__: filling __dict__ directly is twice as fast as object.__setattr__.)
        header = object.__new__(cls)
        state = header.__dict__
        state["name"] = name
        state["value"] = value
        state["raw"] = raw
        return header

    def values(self) -> tuple[str, ...]:
        """The comma-separated elements for a list header (Via, Route, ...), else ``(value,)``."""
        if self.name in LIST_HEADERS:
            return tuple(split_list(self.name, self.value))
        return (self.value,)
