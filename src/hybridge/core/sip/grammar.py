"""The parts of RFC 3261's grammar (§25.1) that a stateless proxy reads.

Header names and their compact forms, comma-separated lists that do not split inside
quoted strings or angle brackets, and the values a relay needs: ``Via``, name-addr values
(``From``, ``To``, ``Contact``, ``Route``, ``Record-Route``), ``CSeq`` and the integers.
Everything else is carried as text, unparsed, and forwarded byte for byte.

Parse functions take one value (already unfolded, RFC 3261 §7.3.1) and return a frozen
value or raise ``InvalidHeaderValueError`` naming the header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from hybridge.core.sip.errors import InvalidHeaderValueError

_T = TypeVar("_T")

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TCHARS = r"A-Za-z0-9.!%*_+`'~-"
TOKEN_RE = re.compile(rf"[{_TCHARS}]+")
TOKEN_BYTES_RE = re.compile(rf"[{_TCHARS}]+".encode())
_QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
# generic-param = token [ EQUAL gen-value ];  gen-value = token / host / quoted-string
_PARAM_RE = re.compile(
    rf'\s*;\s*([{_TCHARS}]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;,"<>]+))?\s*', re.DOTALL
)
# sent-protocol LWS sent-by: LWS may surround each "/" (RFC 4475 §3.1.1.1 folds inside it).
_VIA_RE = re.compile(
    rf"([{_TCHARS}]+)\s*/\s*([{_TCHARS}]+)\s*/\s*([{_TCHARS}]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?:\s*:\s*([0-9]{1,5}))?"
)
# absoluteURI's scheme (RFC 3261 §25.1, RFC 3986 §3.1); the rest: no LWS, CTL, quote, < or >.
_URI = r"[A-Za-z][A-Za-z0-9+.-]*:[!#-;=?-~]+"
_URI_RE = re.compile(_URI)
# The common shapes, matched in one step; anything else takes the slow path, which either
# accepts it too or says precisely what is wrong.
_FAST_NAME_ADDR_RE = re.compile(
    rf'(?:("(?:[^"\\]|\\.)*")\s*|([{_TCHARS}]+(?:\s+[{_TCHARS}]+)*)\s*)?<({_URI})>(.*)',
    re.DOTALL,
)
# addr-spec form: the URI ends at the first ';' and holds no '?' or ','
_FAST_ADDR_SPEC_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:[!#-+\x2d-:=@-~]+)(\s*;.*)?", re.DOTALL)
_DISPLAY_TOKENS_RE = re.compile(rf"[{_TCHARS}]+(?:\s+[{_TCHARS}]+)*")
_LIST_SPECIAL_RE = re.compile(r'[",<]')
_CSEQ_RE = re.compile(r"([0-9]+)[ \t]+(\S+)")


def split_list(header: str, value: str) -> list[str]:
    """Split a list header's value at commas outside quoted strings and ``<...>``.

    Returns the stripped elements. Raises ``InvalidHeaderValueError`` for an empty element
    (``a,,b``: the ABNF ``x *(COMMA x)`` has none; RFC 4475 §3.1.2.1), an unterminated
    quoted string or an unclosed ``<``.
    """
    if '"' not in value and "<" not in value:
        parts = value.split(",")
    else:
        parts = []
        start = pos = 0
        while (found := _LIST_SPECIAL_RE.search(value, pos)) is not None:
            char = found.group()
            pos = found.start()
            if char == ",":
                parts.append(value[start:pos])
                start = pos = pos + 1
            elif char == '"':
                quoted = _QUOTED_RE.match(value, pos)
                if quoted is None:
                    raise InvalidHeaderValueError(
                        header, f"{header} value {value!r} has an unterminated quoted string"
                    )
                pos = quoted.end()
            else:
                close = value.find(">", pos)
                if close < 0:
                    raise InvalidHeaderValueError(
                        header, f"{header} value {value!r} has a '<' without '>'"
                    )
                pos = close + 1
        parts.append(value[start:])
    elements = [part.strip() for part in parts]
    if "" in elements:
        raise InvalidHeaderValueError(
            header, f"{header} value {value!r} has an empty list element; expected a,b,c"
        )
    return elements


Params = tuple[tuple[str, str | None], ...]


def parse_params(header: str, text: str) -> Params:
    """Parse ``*( SEMI generic-param )``; raise ``InvalidHeaderValueError`` on any leftover.

    Names are lower-cased (parameter names compare case-insensitively, §7.3.1); values keep
    their case and quotes.
    """
    params: list[tuple[str, str | None]] = []
    pos, end = 0, len(text)
    while pos < end:
        found = _PARAM_RE.match(text, pos)
        if found is None:
            raise InvalidHeaderValueError(
                header,
                f"{header} parameters {text!r} are malformed at {text[pos : pos + 20]!r}; "
                "expected ;name or ;name=value",
            )
        params.append((found.group(1).lower(), found.group(2)))
        pos = found.end()
    return tuple(params)


def _param(params: Params, name: str) -> str | None:
    for key, value in params:
        if key == name:
            return value
    return None


def _trusted(cls: type[_T], **fields: object) -> _T:
    """Build a value whose fields the calling parser has already checked.

    The parsers below match the whole grammar before building a value; running
    ``__post_init__`` again would re-check what they just checked, on the hot path. (The
    value classes have no ``__slots__`` so that their ``__dict__`` can be filled at once.)
    """
    value = object.__new__(cls)
    value.__dict__.update(fields)
    return value


@dataclass(frozen=True)
class Via:
    """One Via value (RFC 3261 §20.42): ``SIP/2.0/TLS host:port;branch=...``."""

    value: str
    transport: str
    host: str
    port: int | None
    params: Params

    def __post_init__(self) -> None:
        if not self.host or (self.port is not None and not 0 < self.port < 65536):
            raise InvalidHeaderValueError("Via", f"Via sent-by in {self.value!r} is invalid")

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter, or None (RFC 2543 peers send none, RFC 4475 §3.4.1)."""
        return _param(self.params, "branch")

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` (case-insensitive); None if absent or valueless."""
        return _param(self.params, name.lower())


def parse_via(value: str) -> Via:
    """Parse one Via value; raise ``InvalidHeaderValueError`` unless it is
    ``SIP/2.0/transport sent-by *(;param)``."""
    found = _VIA_RE.match(value)
    if found is None:
        raise InvalidHeaderValueError(
            "Via", f"Via value {value!r} is not 'SIP/2.0/<transport> <host>[:port][;params]'"
        )
    name, version, transport, host, port = found.groups()
    if name.upper() != "SIP" or version != "2.0":
        raise InvalidHeaderValueError(
            "Via", f"Via value {value!r} names protocol {name}/{version}; expected SIP/2.0"
        )
    params = parse_params("Via", value[found.end() :])
    port_number = int(port) if port else None
    if port_number is not None and not 0 < port_number < 65536:
        raise InvalidHeaderValueError("Via", f"Via sent-by port in {value!r} is not 1..65535")
    return _trusted(
        Via, value=value, transport=transport.upper(), host=host, port=port_number, params=params
    )


@dataclass(frozen=True)
class NameAddress:
    """A name-addr or addr-spec with header parameters (RFC 3261 §20.10, §20.20, §20.39).

    ``uri`` is the URI text as sent (escapes kept); ``params`` are the header parameters.
    """

    value: str
    display_name: str | None
    uri: str
    params: Params

    def __post_init__(self) -> None:
        if _URI_RE.fullmatch(self.uri) is None:
            raise InvalidHeaderValueError("URI", f"URI {self.uri!r} is not an absolute URI")

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From/To), or None."""
        return _param(self.params, "tag")

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` (case-insensitive); None if absent or valueless."""
        return _param(self.params, name.lower())


def parse_name_address(header: str, value: str, *, name_addr_only: bool = False) -> NameAddress:
    """Parse ``( name-addr / addr-spec ) *( SEMI param )``.

    ``name_addr_only`` demands the ``<...>`` form (Route, Record-Route: RFC 3261 §20.30).
    Raises ``InvalidHeaderValueError`` for an unterminated quoted display name (RFC 4475
    §3.1.2.6), a display name that is neither tokens nor a quoted string (§3.1.2.15), LWS
    inside ``<...>`` (§3.1.2.14), or an addr-spec holding ``?`` or ``,`` (RFC 3261 §20:
    such URIs MUST be enclosed in angle brackets; RFC 4475 §3.1.2.13).
    """
    fast = _FAST_NAME_ADDR_RE.fullmatch(value)
    if fast is not None:
        display_name, uri, rest = fast.group(1) or fast.group(2), fast.group(3), fast.group(4)
        params = parse_params(header, rest.rstrip())
        return _trusted(NameAddress, value=value, display_name=display_name, uri=uri, params=params)
    if not name_addr_only:
        fast = _FAST_ADDR_SPEC_RE.fullmatch(value)
        if fast is not None:
            params = parse_params(header, (fast.group(2) or "").rstrip())
            return _trusted(
                NameAddress, value=value, display_name=None, uri=fast.group(1), params=params
            )
    display: str | None = None
    text = value
    if text.startswith('"'):
        quoted = _QUOTED_RE.match(text)
        if quoted is None:
            raise InvalidHeaderValueError(
                header, f"{header} value {value!r} has an unterminated quoted display name"
            )
        display = text[: quoted.end()]
        text = text[quoted.end() :].lstrip()
        if not text.startswith("<"):
            raise InvalidHeaderValueError(
                header, f"{header} value {value!r}: a quoted display name must precede <uri>"
            )
    angle = text.find("<")
    semi = text.find(";")
    if angle >= 0 and (semi < 0 or angle < semi):
        if display is None:
            before = text[:angle].strip()
            if before:
                if _DISPLAY_TOKENS_RE.fullmatch(before) is None:
                    raise InvalidHeaderValueError(
                        header,
                        f"{header} display name {before!r} is neither tokens nor a quoted string",
                    )
                display = before
        close = text.find(">", angle)
        if close < 0:
            raise InvalidHeaderValueError(header, f"{header} value {value!r} lacks '>'")
        uri = text[angle + 1 : close]
        rest = text[close + 1 :]
    else:
        if name_addr_only:
            raise InvalidHeaderValueError(
                header, f"{header} value {value!r} must be <uri> (name-addr form)"
            )
        uri, _, rest = text.partition(";")
        rest = ";" + rest if _ else ""
        uri = uri.strip()
        if "?" in uri or "," in uri:
            raise InvalidHeaderValueError(
                header, f"{header} URI {uri!r} holds '?' or ',' and must be enclosed in <>"
            )
    if _URI_RE.fullmatch(uri) is None:
        raise InvalidHeaderValueError(
            header, f"{header} URI {uri!r} is not an absolute URI without spaces"
        )
    return NameAddress(value, display, uri, parse_params(header, rest.rstrip()))


def validate_request_uri(uri: str) -> str | None:
    """Return why ``uri`` is not a valid Request-URI, or None when it is.

    RFC 3261 §25.1: ``SIP-URI / SIPS-URI / absoluteURI``; no ``<>`` (RFC 4475 §3.1.2.7);
    a sip/sips URI carries no headers component (§19.1.5, RFC 4475 §3.1.2.11). The user part
    may hold ``?`` (RFC 4475 §3.1.1.2), so only ``?`` after the last ``@`` counts.
    """
    if _URI_RE.fullmatch(uri) is None:
        return "not an absolute URI (scheme:rest, no spaces or <>)"
    scheme, _, rest = uri.partition(":")
    if scheme.lower() in ("sip", "sips") and "?" in rest.rpartition("@")[2]:
        return "a sip/sips Request-URI must not carry a ?headers component"
    return None


@dataclass(frozen=True)
class CSeq:
    """CSeq (RFC 3261 §20.16): a sequence number below 2**31 and a method."""

    number: int
    method: str

    def __post_init__(self) -> None:
        # RFC 3261 §8.1.1.5: the sequence number MUST be expressible as a 32-bit unsigned
        # integer and be less than 2**31.
        if not 0 <= self.number < 2**31:
            raise InvalidHeaderValueError(
                "CSeq", f"CSeq number {self.number} is outside 0..2**31-1"
            )
        if TOKEN_RE.fullmatch(self.method) is None:
            raise InvalidHeaderValueError("CSeq", f"CSeq method {self.method!r} is not a token")


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; leading zeros are fine (RFC 4475 §3.1.1.1)."""
    found = _CSEQ_RE.fullmatch(value)
    if found is None:
        raise InvalidHeaderValueError("CSeq", f"CSeq value {value!r} is not '<number> <method>'")
    number, method = found.groups()
    if len(number.lstrip("0")) > 10:
        raise InvalidHeaderValueError("CSeq", f"CSeq number in {value!r} is above 2**31-1")
    if TOKEN_RE.fullmatch(method) is None:
        raise InvalidHeaderValueError("CSeq", f"CSeq method {method!r} is not a token")
    sequence = int(number)
    # RFC 3261 §8.1.1.5: the sequence number MUST be less than 2**31.
    if sequence >= 2**31:
        raise InvalidHeaderValueError("CSeq", f"CSeq number {sequence} is outside 0..2**31-1")
    return _trusted(CSeq, number=sequence, method=method)


def parse_count(header: str, value: str, maximum: int) -> int:
    """Parse ``1*DIGIT`` no greater than ``maximum``; raise ``InvalidHeaderValueError``.

    Refuses signs and spaces (RFC 4475 §3.1.2.3's ``-999``) and long digit strings before
    converting them (RFC 4475 §3.1.2.4/5's overlarge scalars).
    """
    if not value.isascii() or not value.isdigit() or len(value.lstrip("0")) > 10:
        raise InvalidHeaderValueError(
            header, f"{header} value {value!r} is not a number from 0 to {maximum}"
        )
    number = int(value)
    if number > maximum:
        raise InvalidHeaderValueError(
            header, f"{header} value {value!r} is not a number from 0 to {maximum}"
        )
    return number


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return TOKEN_RE.fullmatch(text) is not None
