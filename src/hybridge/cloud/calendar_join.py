"""Join details for keyword meetings: stable per meeting, different between meetings.

Each meeting's join URL, SIP address and meeting number are derived, not stored: an
HMAC-SHA256 under a per-cloud key (``calendar-join.key`` in the data directory, 32 random
bytes written 0600 on first start, never overwritten, like the connector CA's key in
``cloud.keys``) of the organisation, the organizer's mailbox and the meeting's iCalendar
UID (its item id when the backend gives no UID). The same meeting therefore gets the same
details on every update, re-sync or restart, two meetings never share them (up to HMAC
collisions), and nobody who lacks the key can predict another meeting's URL from its
organiser and UID. Cloud processes that share one database must share this file too (as
they share the connector CA), or a meeting's URL would depend on the node that served it.

Which room a keyword asks for (decided here, after the seed product's behaviour):

- ``@webex:myroom`` — the organizer's personal room: derived from org + mailbox only, so
  every ``:myroom`` meeting of a user has the same URL and number;
- ``@webex:onetime`` and plain ``@webex`` — a one-time meeting of its own;
- ``@webex:space``/``@meet:space`` and plain ``@meet`` — a space for the meeting (its own
  URL under ``/meet/space/``, distinct from its one-time meeting's).

The template (header, footer) is read when a meeting is sent: after an admin changes it,
each meeting gets the new text on its next update (the connector's next PUT of it, e.g. a
change or a re-sync); the cloud does not rewrite every invitation of the organisation at
once, which would write to every mailbox in one burst.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from hybridge.cloud.errors import CloudKeyError
from hybridge.core.meetings import JoinDetails, JoinTemplate, MeetingKeyword

KEY_FILE = "calendar-join.key"
KEY_BYTES = 32

#: The kind of room each keyword asks for (see the module docstring).
ROOM_KINDS = {"myroom": "room", "onetime": "j", "space": "space"}
DEFAULT_KIND = {"webex": "j", "meet": "space"}


def load_join_key(data_dir: Path) -> bytes:
    """The per-cloud join key, generated (0600, never overwritten) on first start.

    Raises:
        CloudKeyError: the file cannot be read or written, or has the wrong size.
    """
    path = data_dir / KEY_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting together never overwrite each other's key.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(secrets.token_bytes(KEY_BYTES))
        key = path.read_bytes()
    except OSError as exc:
        raise CloudKeyError(f"cannot load the calendar join key {str(path)!r}: {exc}") from exc
    if len(key) != KEY_BYTES:
        # The message names the file and the size, never the content.
        raise CloudKeyError(
            f"calendar join key {str(path)!r} has {len(key)} bytes; {KEY_BYTES} are expected"
        )
    return key


def _mac(key: bytes, *parts: str) -> bytes:
    # NUL-separated: no part contains NUL (addresses, ids, uuids), so parts cannot shift.
    return hmac.new(key, b"\x00".join(p.encode() for p in parts), hashlib.sha256).digest()


def room_kind(keyword: MeetingKeyword) -> str:
    """``room``, ``j`` (one-time) or ``space``: the path segment of the join URL."""
    if keyword.modifier is not None:
        return ROOM_KINDS[keyword.modifier]
    return DEFAULT_KIND[keyword.service]


def meeting_key(uid: str, meeting_id: str) -> str:
    """What names a meeting across updates: its UID, else its backend id."""
    return f"uid:{uid}" if uid else f"id:{meeting_id}"


def join_details(
    key: bytes,
    base_url: str,
    *,
    org_id: str,
    mailbox: str,
    uid: str,
    meeting_id: str,
    keyword: MeetingKeyword,
    template: JoinTemplate,
) -> JoinDetails:
    """The join details of a keyword meeting organised by ``mailbox``."""
    kind = room_kind(keyword)
    if kind == "room":
        mac = _mac(key, "myroom", org_id, mailbox)
    else:
        mac = _mac(key, kind, org_id, mailbox, meeting_key(uid, meeting_id))
    token = base64.urlsafe_b64encode(mac[:15]).decode()
    # Ten digits, never a leading zero: 2,000,000,000 .. 9,999,999,999.
    number = 2_000_000_000 + int.from_bytes(mac[16:24], "big") % 8_000_000_000
    digits = str(number)
    host = urlsplit(base_url).hostname or "localhost"
    return JoinDetails(
        join_url=f"{base_url}/meet/{kind}/{token}",
        template=template,
        sip_address=f"{digits}@{host}",
        meeting_number=f"{digits[:4]} {digits[4:7]} {digits[7:]}",
    )


def preview_lines(key: bytes, base_url: str, org_id: str, template: JoinTemplate) -> list[str]:
    """The block a sample one-time meeting would get with ``template`` (for the editor)."""
    sample = join_details(
        key,
        base_url,
        org_id=org_id,
        mailbox="preview@example.invalid",
        uid="preview",
        meeting_id="preview",
        keyword=MeetingKeyword("webex", "onetime", "subject"),
        template=template,
    )
    return sample.lines()


#: Bytes of HMAC in a join URL's token: 120 bits, so guessing a live URL is hopeless at
#: any request rate (2**120 / 10**9 guesses a second outlasts the universe); base64url of
#: 15 bytes is 20 characters with no padding.
TOKEN_BYTES = 15
TOKEN_CHARS = 20
_TOKEN_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def parse_join_path(path: str) -> tuple[str, str] | None:
    """``(kind, token)`` of a join URL's path after ``/meet/`` (``j/<token>``), else None.

    None for anything ``join_details`` could not have made: an unknown kind, a token of
    the wrong length or alphabet, extra segments. The caller answers it exactly as an
    unknown meeting, so the answer says nothing about which part was wrong.
    """
    kind, slash, token = path.partition("/")
    if not slash or kind not in ROOM_KINDS.values():
        return None
    if len(token) != TOKEN_CHARS or not set(token) <= _TOKEN_ALPHABET:
        return None
    return kind, token


def join_url_of(base_url: str, kind: str, token: str) -> str:
    """The join URL ``join_details`` hands out for ``kind`` and ``token`` on this cloud."""
    return f"{base_url}/meet/{kind}/{token}"
