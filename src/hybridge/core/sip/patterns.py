"""The grammar of the relay's fast path: the patterns ``core.sip.lazy`` and
``core.sip.shapes`` match header sections with.

Each pattern is a narrower copy of its counterpart in ``grammar.py``/``section.py``/
``message.py`` (single SP where the grammar allows LWS, token characters where it allows
more, one value per line where it allows comma lists, numbers bounded as the full codec
bounds them), so that what matches here the full codec accepts with the same values — the
rule ``core.sip.lazy``'s docstring explains. The values a relay reads are named groups.

Why by hand: these are the full codec's own rules, restated as regular expressions so
that the regex engine, not a Python loop, checks a header section.
"""

from __future__ import annotations

import re
from typing import Final


def decimal_at_most(limit: int) -> bytes:
    """A pattern for the decimals from 0 to ``limit`` written in at most as many digits as
    ``limit`` (leading zeros allowed): what ``s.isdigit() and len(s) <= w and int(s) <=
    limit`` accepts, checked by the regex engine instead of by ``int``.

    The pattern must be followed by something that is not a digit.
    """
    digits = str(limit).encode()
    width = len(digits)
    # same width: a prefix of ``limit``, then a smaller digit, then anything
    alternatives = [
        digits[:at] + b"[0-%c]" % (digit - 1) + b"[0-9]{%d}" % (width - at - 1)
        for at, digit in enumerate(digits)
        if digit > ord("0")
    ]
    alternatives.append(digits)
    if width > 1:
        alternatives.append(b"[0-9]{1,%d}" % (width - 1))
    return b"(?:" + b"|".join(alternatives) + b")"


_T = rb"A-Za-z0-9.!%*_+`'~-"
TOKEN: Final = rb"[" + _T + rb"]+"
TOKEN_RE: Final = re.compile(TOKEN)
#: LWS as the fast path takes it (no folding): around the colon and at the end of a line.
WS: Final = rb"[ \t]*"
#: RFC 3261 §7.1 request line; the URI is grammar.py's _URI without '?' (a sip/sips URI may
#: not carry headers, and a '?' in a user part is left to the full codec).
REQUEST_LINE: Final = (
    rb"(?P<method>" + TOKEN + rb") (?P<uri>[A-Za-z][A-Za-z0-9+.-]*:[!#-;=@-~]+) SIP/2\.0"
)
#: RFC 3261 §7.2 status line: 100..699 and a reason without CR/LF (the line has none).
STATUS_LINE: Final = rb"SIP/2\.0 (?P<status>[1-6][0-9][0-9]) [^\r\n]*"


def _not_named(name: bytes) -> bytes:
    # A parameter name that is not ``name`` (any case): ``name`` followed by a token
    # character is some other name.
    return rb"(?!(?i:" + name + rb")(?![" + _T + rb"]))"


_QUOTED = rb"\"[^\"\\\r\n]*\""
# grammar.py's parse_params narrowed to ';' token ['=' (token | quoted-string)]
_PARAM = rb";" + TOKEN + rb"(?:=(?:" + TOKEN + rb"|" + _QUOTED + rb"))?"
PARAMS: Final = rb"(?:" + _PARAM + rb")*"
#: grammar.py's _FAST_NAME_ADDR_RE narrowed: a quoted display name without escapes or a run
#: of tokens, one SP at most before '<'.
NAME_ADDR: Final = (
    rb"(?:" + _QUOTED + rb" ?|" + TOKEN + rb"(?: " + TOKEN + rb")* ?)?"
    rb"<[A-Za-z][A-Za-z0-9+.-]*:[!#-;=?-~]+>"
)
#: grammar.py's _FAST_ADDR_SPEC_RE: the URI ends at the first ';', holds no '?' or ','.
ADDR_SPEC: Final = rb"[A-Za-z][A-Za-z0-9+.-]*:[!#-+\x2d-:=@-~]+"
#: From/To/Contact: either form, then parameters.
ADDRESS: Final = rb"(?:" + NAME_ADDR + rb"|" + ADDR_SPEC + rb")" + PARAMS


def to_address(group: bytes) -> bytes:
    """``ADDRESS`` with the value of its first ``tag`` parameter (any case) in ``group``,
    as grammar.py's NameAddress.tag finds it (a valueless ``;tag`` leaves it unset)."""
    value = rb"(?:" + TOKEN + rb"|" + _QUOTED + rb")"
    not_tag = rb";" + _not_named(b"tag") + TOKEN + rb"(?:=" + value + rb")?"
    tag = rb";(?i:tag)(?:=(?P<" + group + rb">" + value + rb"))?"
    address = (rb"(?:", NAME_ADDR, rb"|", ADDR_SPEC, rb")")
    return b"".join((*address, rb"(?:", not_tag, rb")*(?:", tag, PARAMS, rb")?"))


#: No comma anywhere in a Contact or Record-Route value: one value per line (a list on one
#: line, or a comma inside a quoted string or a URI, is left to the full codec's splitter).
NO_COMMA: Final = rb"(?![^\r\n]*,)"
#: RFC 3261 §18.2.2 port: 1..65535 (grammar.py reads at most 5 digits and refuses 0).
PORT: Final = rb"(?!0+(?![0-9]))" + decimal_at_most(65535)
_VIA_PARAM = rb";" + TOKEN + rb"(?:=" + TOKEN + rb")?"


def via(groups: bool) -> bytes:
    """grammar.py's _VIA_RE + parse_params with single SP, no LWS, token parameter values.

    With ``groups``: the value in ``via_value``, its sent-by in ``via_host``/``via_port``
    and its first ``branch`` parameter's value (any case) in ``via_branch``. A Via holds no
    comma here: one Via per line.
    """
    if not groups:
        return (
            rb"SIP/2\.0/" + TOKEN + rb" (?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
            rb"(?::" + PORT + rb")?(?:" + _VIA_PARAM + rb")*"
        )
    return (
        rb"(?P<via_value>SIP/2\.0/" + TOKEN + rb" (?P<via_host>\[[0-9A-Fa-f:.]+\]"
        rb"|[A-Za-z0-9._-]+)(?::(?P<via_port>" + PORT + rb"))?"
        rb"(?:;" + _not_named(b"branch") + TOKEN + rb"(?:=" + TOKEN + rb")?)*"
        rb"(?:;(?i:branch)(?:=(?P<via_branch>" + TOKEN + rb"))?(?:" + _VIA_PARAM + rb")*)?)"
    )


#: RFC 3261 §20.22: 0..255 (grammar.py's limit), at most 3 digits.
MAX_FORWARDS: Final = decimal_at_most(255)
#: grammar.py's parse_cseq narrowed: at most 10 digits below 2**31, one SP, a token method.
CSEQ_NUMBER: Final = decimal_at_most(2**31 - 1)
#: message.py's _CALL_ID_RE on bytes (a byte >= 0x80 decodes to a char >= U+0080).
CALL_ID: Final = rb"[!-~\x80-\xff]+"
#: Content-Length as framing reads it without a full parse (stream.py).
CONTENT_LENGTH: Final = rb"[0-9]{1,10}"

# What the relay needs from each header, by every spelling the full codec maps to it.
(
    KIND_VIA,
    KIND_MAX_FORWARDS,
    KIND_FROM,
    KIND_TO,
    KIND_CALL_ID,
    KIND_CSEQ,
    KIND_CONTENT_LENGTH,
    KIND_CONTACT,
    KIND_RECORD_ROUTE,
    KIND_UNSUPPORTED,
) = range(10)
#: Names compare in any case (§7.3.1): the lower-case spellings, compact forms too.
KINDS: Final = {
    b"via": KIND_VIA,
    b"v": KIND_VIA,
    b"max-forwards": KIND_MAX_FORWARDS,
    b"from": KIND_FROM,
    b"f": KIND_FROM,
    b"to": KIND_TO,
    b"t": KIND_TO,
    b"call-id": KIND_CALL_ID,
    b"i": KIND_CALL_ID,
    b"cseq": KIND_CSEQ,
    b"content-length": KIND_CONTENT_LENGTH,
    b"l": KIND_CONTENT_LENGTH,
    b"contact": KIND_CONTACT,
    b"m": KIND_CONTACT,
    b"record-route": KIND_RECORD_ROUTE,
    # The fast path does not edit Route (§16.4 pops our own) or answer 420 for
    # Proxy-Require (§16.3 step 5): both go to the full codec.
    b"route": KIND_UNSUPPORTED,
    b"proxy-require": KIND_UNSUPPORTED,
}
#: The headers the full codec refuses twice (DuplicateHeaderError): a second one is not plain.
SINGLE: Final = frozenset(
    {
        KIND_MAX_FORWARDS,
        KIND_FROM,
        KIND_TO,
        KIND_CALL_ID,
        KIND_CSEQ,
        KIND_CONTENT_LENGTH,
    }
)
#: The headers the full codec requires of every message (besides a Via).
REQUIRED: Final = frozenset({KIND_FROM, KIND_TO, KIND_CALL_ID, KIND_CSEQ})


def header_value(kind: int, *, first_via: bool = False, request: bool = False) -> bytes:
    """The value pattern for a header of ``kind``, as the fast path accepts it.

    Named groups: ``first_via`` gives ``via``'s; Max-Forwards ``max_forwards``, To
    ``to_tag``, Content-Length ``content_length``, CSeq ``cseq_method`` — or, for a
    ``request`` (compiled with the request line), a backreference that makes the method
    equal the request line's (§8.1.1.5: a mismatch is the full codec's to name).
    """
    if kind == KIND_VIA:
        return via(first_via)
    if kind == KIND_MAX_FORWARDS:
        return rb"(?P<max_forwards>" + MAX_FORWARDS + rb")"
    if kind == KIND_FROM:
        return ADDRESS
    if kind == KIND_TO:
        return to_address(b"to_tag")
    if kind == KIND_CALL_ID:
        return CALL_ID
    if kind == KIND_CSEQ:
        method = rb"(?P=method)" if request else rb"(?P<cseq_method>" + TOKEN + rb")"
        return CSEQ_NUMBER + rb" " + method
    if kind == KIND_CONTENT_LENGTH:
        return rb"(?P<content_length>" + CONTENT_LENGTH + rb")"
    if kind == KIND_CONTACT:
        return rb"(?:\*|" + NO_COMMA + ADDRESS + rb")"
    if kind == KIND_RECORD_ROUTE:
        return NO_COMMA + NAME_ADDR + PARAMS
    raise ValueError(f"no fast-path pattern for header kind {kind}")


def header_line(name: bytes, value: bytes) -> bytes:
    """One header line: ``name`` (a pattern), HCOLON without folding, ``value``, LWS."""
    return name + WS + rb":" + WS + value + WS


#: Any header the relay does not read: a token name (section.py's header-line shape) that
#: is none of the names above, and an opaque value.
OTHER_VALUE: Final = rb"[^\r\n]*"
OTHER_LINE: Final = (
    rb"(?!(?i:"
    + b"|".join(re.escape(n) for n in KINDS)
    + rb")"
    + WS
    + rb":)"
    + TOKEN
    + WS
    + rb":"
    + OTHER_VALUE
)
