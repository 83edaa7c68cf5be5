"""A lazy view of a header section: what a stateless relay reads, found without a full parse.

``scan_head(head)`` looks at one header section (bytes, without its final CRLFCRLF) and
returns a ``LazyHead`` — the start line, the index of each header line a relay edits or
reads, the top Via's sent-by and branch, Max-Forwards, the To tag — or ``None`` when the
section is anything but plain. The relay's fast path (``hybridge.edge.relay``) splices
bytes into ``LazyHead.lines`` instead of building a ``Request``; on ``None`` it falls back
to the full codec (``parse_head`` and ``Request``/``Response``), which stays the reference.

The rule that keeps the two paths equal: every check here accepts a *subset* of what the
full codec accepts. Each regex below is a narrower copy of its counterpart in
``grammar.py``/``section.py`` (single SP where the grammar allows LWS, token characters
where it allows more, one value per line where it allows comma lists), and every header
the full codec checks (Via, Route, Record-Route, Contact, From, To, Call-ID, CSeq,
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

_T = rb"A-Za-z0-9.!%*_+`'~-"
# A header name (section.py's header-line pattern: a token, then LWS before the colon).
_TOKEN_RE: Final = re.compile(rb"[" + _T + rb"]+")
# RFC 3261 §7.1 request line; the URI is grammar.py's _URI without '?' (a sip/sips URI may
# not carry headers, and a '?' in a user part is left to the full codec).
_REQUEST_LINE_RE: Final = re.compile(
    rb"([" + _T + rb"]+) ([A-Za-z][A-Za-z0-9+.-]*:[!#-;=@-~]+) SIP/2\.0"
)
# RFC 3261 §7.2 status line: 100..699 and a reason without CR/LF (the line has none).
_STATUS_LINE_RE: Final = re.compile(rb"SIP/2\.0 ([1-6][0-9][0-9]) ([^\r\n]*)")
# grammar.py's _VIA_RE + parse_params with single SP, no LWS, token parameter values.
_VIA_RE: Final = re.compile(
    rb"SIP/2\.0/[" + _T + rb"]+ (\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?"
    rb"((?:;[" + _T + rb"]+(?:=[" + _T + rb"]+)?)*)"
)
_PARAM_RE: Final = re.compile(rb";([" + _T + rb"]+)(?:=([" + _T + rb"]+))?")
# grammar.py's _FAST_NAME_ADDR_RE / _FAST_ADDR_SPEC_RE, narrowed: a quoted display name
# without escapes or a run of tokens, one SP at most before '<', token parameters.
_PARAMS = rb"((?:;[" + _T + rb"]+(?:=(?:[" + _T + rb"]+|\"[^\"\\\r\n]*\"))?)*)"
_NAME_ADDR_RE: Final = re.compile(
    rb"(?:\"[^\"\\\r\n]*\" ?|[" + _T + rb"]+(?: [" + _T + rb"]+)* ?)?"
    rb"<[A-Za-z][A-Za-z0-9+.-]*:[!#-;=?-~]+>" + _PARAMS
)
_ADDR_SPEC_RE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*:[!#-+\x2d-:=@-~]+" + _PARAMS)
_TAG_RE: Final = re.compile(rb";([" + _T + rb"]+)(?:=([^;]*))?")
# message.py's _CALL_ID_RE on bytes (any byte >= 0x80 decodes to a char >= U+0080).
_CALL_ID_RE: Final = re.compile(rb"[!-~\x80-\xff]+")
# grammar.py's parse_cseq narrowed: at most 10 digits, one SP, a token method.
_CSEQ_RE: Final = re.compile(rb"([0-9]{1,10}) ([" + _T + rb"]+)")

# What the relay needs from each header, by every spelling the full codec maps to it. The
# single-valued headers come first: kind k < _VIA has bit 1 << k in the "seen" mask.
(
    _CONTENT_LENGTH,
    _CALL_ID,
    _CSEQ,
    _FROM,
    _TO,
    _MAX_FORWARDS,
    _VIA,
    _CONTACT,
    _RECORD_ROUTE,
    _UNSUPPORTED,
) = range(10)
_REQUIRED_BITS: Final = (1 << _CALL_ID) | (1 << _CSEQ) | (1 << _FROM) | (1 << _TO)
_NAMES: Final = {
    b"via": _VIA,
    b"v": _VIA,
    b"max-forwards": _MAX_FORWARDS,
    b"from": _FROM,
    b"f": _FROM,
    b"to": _TO,
    b"t": _TO,
    b"call-id": _CALL_ID,
    b"i": _CALL_ID,
    b"cseq": _CSEQ,
    b"content-length": _CONTENT_LENGTH,
    b"l": _CONTENT_LENGTH,
    b"contact": _CONTACT,
    b"m": _CONTACT,
    b"record-route": _RECORD_ROUTE,
    # The fast path does not edit Route (§16.4 pops our own) or answer 420 for
    # Proxy-Require (§16.3 step 5): both go to the full codec.
    b"route": _UNSUPPORTED,
    b"proxy-require": _UNSUPPORTED,
}
# the canonical spellings too, so the usual case costs one lookup and no bytes.lower()
_NAMES.update({b"-".join(p.capitalize() for p in k.split(b"-")): v for k, v in _NAMES.items()})
_NAMES.update({b"Call-ID": _CALL_ID, b"CSeq": _CSEQ})
_CSEQ_LIMIT: Final = 2**31
_MAX_FORWARDS_LIMIT: Final = 255


class LazyHead:
    """The parts of one header section a stateless relay uses, with their line indexes.

    ``lines[0]`` is the start line, ``lines[1:]`` the header lines as received. Indexes are
    into ``lines``; -1 means absent. For a request ``method``/``uri`` are set and
    ``status`` is 0; for a response ``status`` is set and ``method`` is ``b""``.
    ``via_host``/``via_port``/``via_branch`` are the top Via's sent-by and branch exactly as
    ``grammar.Via`` holds them (``via_port`` None when the Via has no port).
    """

    __slots__ = (
        "cseq_method",
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
    cseq_method: bytes


def _name_addr(value: bytes) -> bytes | None:
    """The header-parameter part of a plain name-addr/addr-spec, or None if not plain."""
    found = _NAME_ADDR_RE.fullmatch(value)
    if found is None:
        found = _ADDR_SPEC_RE.fullmatch(value)
        if found is None:
            return None
    return found.group(1)


def _has_tag(params: bytes) -> bool:
    # grammar.py's NameAddress.tag: the first parameter named tag (any case) with a value;
    # a valueless ";tag" is no tag there either.
    for name, value in _TAG_RE.findall(params):
        if name.lower() == b"tag":
            return bool(value)
    return False


def scan_head(head: bytes) -> LazyHead | None:
    """The lazy view of ``head`` (a header section without its CRLFCRLF), or None.

    None means "not plain enough for the fast path": the caller parses the message with the
    full codec, which then accepts it or raises the precise error. Never raises.
    """
    lines = head.split(b"\r\n")
    count = len(lines) - 1
    if not count or head.count(b"\r") != count or head.count(b"\n") != count:
        return None  # a bare CR or LF: the full codec names it
    start = lines[0]
    view = LazyHead()
    view.lines = lines
    if start[:8] == b"SIP/2.0 ":
        status_line = _STATUS_LINE_RE.fullmatch(start)
        if status_line is None:
            return None
        view.status = int(status_line.group(1))
        view.method = view.uri = b""
    else:
        request_line = _REQUEST_LINE_RE.fullmatch(start)
        if request_line is None:
            return None
        view.status = 0
        view.method, view.uri = request_line.groups()
    names = _NAMES
    seen = 0
    first_via = first_record_route = max_forwards_index = -1
    second_via = to_tag = False
    max_forwards: int | None = None
    cseq_method = b""
    for index in range(1, count + 1):
        name, colon, value = lines[index].partition(b":")
        if not colon:
            return None  # not "name: value"
        kind = names.get(name)
        if kind is None:
            # HCOLON allows LWS before the colon; names compare in any case (§7.3.1)
            name = name.rstrip(b" \t")
            if _TOKEN_RE.fullmatch(name) is None:
                return None  # folding (a line starting with LWS), or no token name
            kind = names.get(name)
            if kind is None:
                kind = names.get(name.lower())
            if kind is None:
                continue  # opaque: the full codec checks nothing more than its line shape
        value = value.strip(b" \t")
        if kind < _VIA:
            bit = 1 << kind
            if seen & bit:
                return None  # a duplicate: the full codec names it
            seen |= bit
            if kind == _CONTENT_LENGTH:
                continue  # framing has read it and checked it against the body already
            if kind in (_FROM, _TO):
                params = _name_addr(value)
                if params is None:
                    return None
                if kind == _TO and params:
                    to_tag = _has_tag(params)
            elif kind == _CALL_ID:
                if _CALL_ID_RE.fullmatch(value) is None:
                    return None
            elif kind == _CSEQ:
                cseq = _CSEQ_RE.fullmatch(value)
                if cseq is None or int(cseq.group(1)) >= _CSEQ_LIMIT:
                    return None
                cseq_method = cseq.group(2)
            else:  # _MAX_FORWARDS
                if not value.isdigit() or len(value) > 3:
                    return None
                max_forwards = int(value)
                if max_forwards > _MAX_FORWARDS_LIMIT:
                    return None
                max_forwards_index = index
        elif kind == _VIA:
            if b"," in value:
                return None
            via = _VIA_RE.fullmatch(value)
            if via is None:
                return None
            port = via.group(2)
            if port is not None and not 0 < int(port) < 65536:
                return None
            if first_via < 0:
                first_via = index
                view.via_value = value
                view.via_host = via.group(1)
                view.via_port = int(port) if port is not None else None
                view.via_branch = None
                for param, param_value in _PARAM_RE.findall(via.group(3)):
                    if param.lower() == b"branch":
                        view.via_branch = param_value or None
                        break
            else:
                second_via = True
        elif kind == _CONTACT:
            if value != b"*" and (b"," in value or _name_addr(value) is None):
                return None
        elif kind == _RECORD_ROUTE:
            if b"," in value or _NAME_ADDR_RE.fullmatch(value) is None:
                return None
            if first_record_route < 0:
                first_record_route = index
        else:  # _UNSUPPORTED
            return None
    if first_via < 0 or seen & _REQUIRED_BITS != _REQUIRED_BITS:
        return None  # a required header is missing: the full codec names it
    if view.status == 0 and cseq_method != view.method:
        return None  # §8.1.1.5 mismatch: the full codec names it
    view.first_via = first_via
    view.second_via = second_via
    view.max_forwards = max_forwards
    view.max_forwards_index = max_forwards_index
    view.first_record_route = first_record_route
    view.to_tag = to_tag
    view.cseq_method = cseq_method
    return view
