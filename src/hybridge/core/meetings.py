"""Meeting keywords and the join-details block, pure: text in, text out.

**Keywords.** An organizer asks for a cloud meeting by writing ``@webex`` or ``@meet`` in the
subject or the body, optionally with one modifier: ``@webex:space`` (meet in a space),
``@webex:myroom`` (the organizer's personal room), ``@webex:onetime`` (a one-time meeting).
The rules, decided here and tested:

- *Case*: the keyword and the modifier match in any case (``@WebEx:MyRoom``): Outlook's
  autocorrect capitalises a word at the start of a sentence, and an organizer who typed the
  keyword wants the meeting.
- *Where*: the subject is searched first, then the body; the first keyword found wins and
  :attr:`MeetingKeyword.source` says where it was. Text inside our own join-details block
  never counts (a template may mention ``@webex``).
- *Boundaries*: the ``@`` must start a word (``bob@webex.com`` and ``x@meet`` are addresses,
  not keywords) and the keyword must end there (``@webexteam``, ``@meet.example.com`` and
  ``@meet-up`` are not keywords; ``@webex.`` at the end of a sentence is).
- *Modifiers*: only ``space``, ``myroom`` and ``onetime``. ``@webex:other`` is *not* a
  keyword: guessing would give the organizer a meeting type they did not ask for.
- *Removal*: a meeting without a keyword gets no join details; if it had them, they go.

**Join details.** The connector writes the cloud's join details into the invitation between
two delimited markers, :data:`BEGIN_MARKER` and :data:`END_MARKER`. They are plain ASCII text,
not HTML comments or element ids, because Exchange and Outlook rewrite HTML bodies (they drop
comments and rename ids) but keep the visible text. :func:`apply_join_details` first removes
every complete block, then appends a fresh one, so applying the same details twice gives
the same body (a re-sync or a second update never adds them twice), the organizer's text
outside the markers is kept byte for byte, and ``details=None`` removes the block. A marker
without its partner is left alone: we delete only text we can prove is ours.

Written by hand because no library does this: it is the product's own convention.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from hybridge.core.errors import HybridgeError

Service = Literal["webex", "meet"]
Modifier = Literal["space", "myroom", "onetime"]
KeywordSource = Literal["subject", "body"]
BodyType = Literal["Text", "HTML"]

SERVICES: tuple[Service, ...] = ("webex", "meet")
MODIFIERS: tuple[Modifier, ...] = ("space", "myroom", "onetime")

#: The admin-editable header and footer are each at most this many characters (the
#: seed product's template limit).
MAX_TEMPLATE_CHARS = 1024
#: A body larger than this is not searched or edited (Exchange's default limit for a whole
#: message is 35 MB; invitations with a body this large are not meetings we rewrite).
MAX_BODY_CHARS = 4 * 1024 * 1024

BEGIN_MARKER = "[[hybridge:join-details:begin]]"
END_MARKER = "[[hybridge:join-details:end]]"


class MeetingError(HybridgeError):
    """Root of this module's errors: a template or join details that cannot be used."""


class TemplateError(MeetingError):
    """A header or footer template is too long or contains a character we refuse."""


class JoinDetailsError(MeetingError):
    """Join details that cannot be written into an invitation (bad URL, bad text)."""


class BodyTooLargeError(MeetingError):
    """A body over :data:`MAX_BODY_CHARS`; we neither search nor edit it."""


@dataclass(frozen=True)
class MeetingKeyword:
    """The keyword an organizer wrote: service, optional modifier, and where it was."""

    service: Service
    modifier: Modifier | None
    source: KeywordSource

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise MeetingError(f"service {self.service!r} must be one of {SERVICES}")
        if self.modifier is not None and self.modifier not in MODIFIERS:
            raise MeetingError(f"modifier {self.modifier!r} must be one of {MODIFIERS}")

    @property
    def text(self) -> str:
        """The keyword in canonical form, e.g. ``@webex:myroom``."""
        return f"@{self.service}" + (f":{self.modifier}" if self.modifier else "")


# The "@" starts a word (not after a letter, digit, "_", ".", "@", "-", "/", "+", "=" as in
# addresses and URLs). After the keyword (and an optional ":word"), nothing word-like may
# follow: a letter, digit, "_", "-", "@", ":" or a "." that continues a host name.
_KEYWORD = re.compile(
    r"(?<![\w.@/+=-])@(?P<service>webex|meet)(?::(?P<modifier>[A-Za-z]+))?(?![\w@:-]|\.\w)",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[^>]*>")
_MEETING_NUMBER = re.compile(r"^(?=.{1,32}$)\d+(?: \d+)*$")
_ALLOWED_CONTROL = frozenset("\n\t")


def _check_size(text: str, what: str) -> None:
    if len(text) > MAX_BODY_CHARS:
        raise BodyTooLargeError(
            f"{what} has {len(text)} characters; at most {MAX_BODY_CHARS} are searched or edited"
        )


def html_to_text(body: str) -> str:
    """The visible text of an HTML body (tags dropped, entities decoded), for searching."""
    return html.unescape(_TAG.sub(" ", body))


def _search(text: str, source: KeywordSource) -> MeetingKeyword | None:
    for match in _KEYWORD.finditer(text):
        modifier = match.group("modifier")
        if modifier is not None and modifier.lower() not in MODIFIERS:
            continue  # an unknown modifier is not a keyword (see the module docstring)
        return MeetingKeyword(
            service=match.group("service").lower(),  # type: ignore[arg-type]
            modifier=modifier.lower() if modifier else None,  # type: ignore[arg-type]
            source=source,
        )
    return None


def find_keyword(subject: str, body: str, body_type: BodyType = "Text") -> MeetingKeyword | None:
    """Return the meeting's keyword (subject first, then body), or None when it has none.

    Our own join-details block is ignored. Raises BodyTooLargeError for a huge body.
    """
    _check_size(body, "the body")
    found = _search(subject, "subject")
    if found is not None:
        return found
    body = remove_join_details(body, body_type)
    text = html_to_text(body) if body_type == "HTML" else body
    return _search(text, "body")


def _check_template_text(value: str, field: str) -> None:
    if len(value) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"{field} has {len(value)} characters; at most {MAX_TEMPLATE_CHARS} are allowed"
        )
    for ch in value:
        if (ord(ch) < 32 or ord(ch) == 127) and ch not in _ALLOWED_CONTROL:
            raise TemplateError(
                f"{field} contains control character {ch!r}; only newline and tab are allowed"
            )
    for marker in (BEGIN_MARKER, END_MARKER):
        if marker in value:
            # A marker inside the text would end (or restart) the block early on removal.
            raise TemplateError(f"{field} must not contain the marker {marker!r}")


@dataclass(frozen=True)
class JoinTemplate:
    """The admin's header and footer around the join details, each <= 1,024 characters."""

    header: str = ""
    footer: str = ""

    def __post_init__(self) -> None:
        _check_template_text(self.header, "header")
        _check_template_text(self.footer, "footer")


@dataclass(frozen=True)
class JoinDetails:
    """What the cloud returns for a keyword meeting: where and how to join, in a template."""

    join_url: str
    template: JoinTemplate = JoinTemplate()
    sip_address: str | None = None
    meeting_number: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.join_url)
        if parts.scheme != "https" or not parts.hostname or len(self.join_url) > 2048:
            raise JoinDetailsError(
                f"join URL {self.join_url!r} must be an https:// URL with a host, "
                "at most 2,048 characters"
            )
        for field, value in (("join URL", self.join_url), ("SIP address", self.sip_address or "")):
            if any(ord(c) < 33 or ord(c) == 127 for c in value):
                raise JoinDetailsError(f"{field} {value!r} must not contain spaces or controls")
            if BEGIN_MARKER in value or END_MARKER in value:
                raise JoinDetailsError(f"{field} {value!r} must not contain a marker")
        if self.meeting_number is not None and not _MEETING_NUMBER.match(self.meeting_number):
            raise JoinDetailsError(
                f"meeting number {self.meeting_number!r} must be digits in groups separated "
                "by single spaces (e.g. '2601 123 456'), at most 32 characters"
            )

    def lines(self) -> list[str]:
        """The block's text lines, between the markers."""
        out: list[str] = []
        if self.template.header:
            out.extend(self.template.header.splitlines())
        out.append(f"Join the meeting: {self.join_url}")
        if self.sip_address:
            out.append(f"Join from a video system: {self.sip_address}")
        if self.meeting_number:
            out.append(f"Meeting number: {self.meeting_number}")
        if self.template.footer:
            out.extend(self.template.footer.splitlines())
        return out


def _block_pattern(body_type: BodyType) -> re.Pattern[str]:
    begin, end = re.escape(BEGIN_MARKER), re.escape(END_MARKER)
    if body_type == "HTML":
        # Our <div> wrapper (and whitespace before it) goes with the markers when present.
        return re.compile(
            rf"\s*(?:<div[^>]*>\s*)?{begin}.*?{end}(?:\s*</div>)?(?:\r?\n)?", re.DOTALL
        )
    return re.compile(rf"\s*{begin}.*?{end}[ \t]*\n?", re.DOTALL)


def has_join_details(body: str) -> bool:
    """True when ``body`` holds a complete join-details block."""
    start = body.find(BEGIN_MARKER)
    return start >= 0 and body.find(END_MARKER, start) >= 0


def remove_join_details(body: str, body_type: BodyType = "Text") -> str:
    """``body`` without any complete join-details block (and the blank line before it).

    Text outside the markers is kept; a lone marker is left in place. Raises
    BodyTooLargeError for a huge body.
    """
    _check_size(body, "the body")
    if not has_join_details(body):
        return body
    pattern = _block_pattern(body_type)
    if body_type == "HTML":
        return pattern.sub("", body)
    # Text the organizer wrote after the block stays on a line of its own.
    return pattern.sub(lambda m: "" if m.end() == len(body) else "\n", body)


def _render(details: JoinDetails, body_type: BodyType) -> str:
    if body_type == "HTML":
        inner = "<br>\n".join(html.escape(line) for line in details.lines())
        return f"<div>{BEGIN_MARKER}<br>\n{inner}<br>\n{END_MARKER}</div>"
    return "\n".join([BEGIN_MARKER, *details.lines(), END_MARKER])


_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)


def _visible(text: str, body_type: BodyType) -> str:
    text = html_to_text(text) if body_type == "HTML" else text
    return " ".join(text.split())


def _already_applied(body: str, details: JoinDetails | None, body_type: BodyType) -> bool:
    """True when ``body`` already says what ``details`` would write.

    Compared on visible text with whitespace collapsed, because servers rewrite what we
    store (XML parsing turns CRLF into LF; Exchange re-renders HTML): comparing bytes would
    make every sync write the block again, forever.
    """
    if details is None:
        return not has_join_details(body)
    blocks = list(_block_pattern(body_type).finditer(body))
    if len(blocks) != 1:
        return False
    return _visible(blocks[0].group(0), body_type) == _visible(
        _render(details, body_type), body_type
    )


def apply_join_details(body: str, details: JoinDetails | None, body_type: BodyType = "Text") -> str:
    """Return ``body`` with exactly one block for ``details`` (or none when None).

    Idempotent: ``apply(apply(b, d), d) == apply(b, d)``, and ``apply(b, None)`` gives the
    organizer's text back. Raises BodyTooLargeError for a huge body.
    """
    if _already_applied(body, details, body_type):
        return body
    base = remove_join_details(body, body_type)
    if details is None:
        return base
    block = _render(details, body_type)
    if body_type == "HTML":
        # The last </body>: an invitation may quote an older message's body.
        close = max(_BODY_CLOSE.finditer(base), key=lambda m: m.start(), default=None)
        if close is not None:
            head = base[: close.start()].rstrip()
            return f"{head}\n{block}\n{base[close.start() :]}"
        return f"{base.rstrip()}\n{block}" if base.strip() else block
    return f"{base.rstrip()}\n\n{block}\n" if base.strip() else f"{block}\n"
