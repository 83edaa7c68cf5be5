"""JSON encoding of meetings and join details: the wire between connector and cloud.

The connector and the cloud share no code but this module (see docs/calendar-protocol.md).
Encoding is exact and decoding is strict, so what one side sends is what the other reads:

- every field is present with its JSON type (no defaults on the wire: a missing field is an
  old or broken peer, and guessing would hide it);
- datetimes are ISO 8601 with their UTC offset (``2026-03-29T10:00:00+02:00``), never naive;
  each meeting time travels with its IANA zone name (``start_tz``) because an offset alone
  cannot say where a recurring meeting's next occurrence falls after a DST change;
- sizes are bounded (:data:`MAX_MEETING_BYTES` for a whole document, a limit per field);
- unknown fields are refused, so a typo in a peer is found in its first test.

Also here: :class:`StatusReport` (what the connector reports per mailbox: ``ok``/``error``/
``paused``, a reason, the out-of-office state without its reply text).

Every refusal is a :class:`WireFormatError` whose ``field`` names the offending field as a
path (``attendees[2].role``), and whose message quotes the value and says what is accepted.

Written by hand because it is ten fields of our own model: a schema library (pydantic,
marshmallow) would add a second description of the same dataclasses to keep in step.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from hybridge.calendar.errors import CalendarError, MeetingValueError
from hybridge.calendar.model import (
    Attendee,
    Meeting,
    ModifiedOccurrence,
    OutOfOffice,
    Recurrence,
    canonical_zone,
)
from hybridge.calendar.recurrence import MAX_EXCEPTIONS, RecurrenceError
from hybridge.core.meetings import JoinDetails, JoinTemplate, MeetingError

#: A whole JSON document (a meeting with its body) is at most this many bytes; the cloud
#: answers 413 above it (docs/calendar-protocol.md). Invitation bodies are small; an
#: HTML body pasted from a newsletter is not a meeting we need in full.
MAX_MEETING_BYTES = 256 * 1024
#: Per-field limits, in characters. RFC 5321 §4.5.3.1.3 caps a path at 256 octets, so an
#: address is below that; EWS ItemIds and ChangeKeys are ~150 characters, CalDAV hrefs and
#: ETags can be longer, 1,024 covers both with room.
MAX_ADDRESS_CHARS = 256
MAX_ID_CHARS = 1024
MAX_SUBJECT_CHARS = 2048
MAX_LOCATION_CHARS = 2048
#: Exchange's default recipient limit per message is 500; Graph allows more for a meeting.
MAX_ATTENDEES = 2000

MEETING_FIELDS = frozenset(
    {
        "mailbox",
        "meeting_id",
        "version",
        "uid",
        "organizer",
        "subject",
        "start",
        "end",
        "start_tz",
        "end_tz",
        "body",
        "body_type",
        "location",
        "attendees",
        "recurrence",
    }
)
#: The first recurrence format (daily and weekly rules): exactly these fields, no "format".
RECURRENCE_FIELDS = frozenset({"frequency", "interval", "by_day", "count", "until"})
#: Format 2 (``"format": 2``): every Exchange pattern and the series' exceptions.
RECURRENCE_V2_FIELDS = RECURRENCE_FIELDS | {
    "format",
    "by_month_day",
    "by_month",
    "by_set_pos",
    "week_start",
    "exdates",
    "modified",
}
MODIFIED_FIELDS = frozenset({"original_start", "start", "end"})
ATTENDEE_FIELDS = frozenset({"address", "role"})
JOIN_DETAILS_FIELDS = frozenset({"join_url", "sip_address", "meeting_number", "template"})
TEMPLATE_FIELDS = frozenset({"header", "footer"})


class WireFormatError(CalendarError):
    """A JSON document that is not a valid meeting or join details; ``field`` names where."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class WireTooLargeError(WireFormatError):
    """A document or a field over its size limit."""


# ---------------------------------------------------------------- encoding


def _datetime_to_json(value: dt.datetime) -> str:
    return value.isoformat()


def recurrence_to_json(rec: Recurrence) -> dict[str, Any]:
    """The rule as a JSON-ready dict: the first format when it says the rule (a daily or
    weekly rule without exceptions, which every peer reads), format 2 otherwise."""
    doc: dict[str, Any] = {
        "frequency": rec.frequency,
        "interval": rec.interval,
        "by_day": list(rec.by_day),
        "count": rec.count,
        "until": None if rec.until is None else rec.until.isoformat(),
    }
    if rec.is_basic:
        return doc
    doc.update(
        {
            "format": 2,
            "by_month_day": list(rec.by_month_day),
            "by_month": list(rec.by_month),
            "by_set_pos": list(rec.by_set_pos),
            "week_start": rec.week_start,
            "exdates": [_datetime_to_json(d) for d in rec.exdates],
            "modified": [
                {
                    "original_start": _datetime_to_json(m.original_start),
                    "start": _datetime_to_json(m.start),
                    "end": _datetime_to_json(m.end),
                }
                for m in rec.modified
            ],
        }
    )
    return doc


def meeting_to_json(meeting: Meeting) -> dict[str, Any]:
    """The meeting as a JSON-ready dict (every field; times with their UTC offsets)."""
    rec = meeting.recurrence
    return {
        "mailbox": meeting.mailbox,
        "meeting_id": meeting.meeting_id,
        "version": meeting.version,
        "uid": meeting.uid,
        "organizer": meeting.organizer,
        "subject": meeting.subject,
        "start": _datetime_to_json(meeting.start),
        "end": _datetime_to_json(meeting.end),
        "start_tz": meeting.start_tz,
        "end_tz": meeting.end_tz,
        "body": meeting.body,
        "body_type": meeting.body_type,
        "location": meeting.location,
        "attendees": [{"address": a.address, "role": a.role} for a in meeting.attendees],
        "recurrence": None if rec is None else recurrence_to_json(rec),
    }


def join_template_to_json(template: JoinTemplate) -> dict[str, Any]:
    """The template as a JSON-ready dict ``{"header": ..., "footer": ...}``."""
    return {"header": template.header, "footer": template.footer}


def join_details_to_json(details: JoinDetails) -> dict[str, Any]:
    """The join details as a JSON-ready dict (template included)."""
    return {
        "join_url": details.join_url,
        "sip_address": details.sip_address,
        "meeting_number": details.meeting_number,
        "template": join_template_to_json(details.template),
    }


def dumps(document: Mapping[str, Any]) -> bytes:
    """``document`` as compact UTF-8 JSON bytes (what goes in a request or reply body)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


# ---------------------------------------------------------------- decoding


def loads(data: bytes | str, *, max_bytes: int = MAX_MEETING_BYTES) -> Any:
    """Parse a JSON document of at most ``max_bytes``.

    Raises WireTooLargeError above the limit and WireFormatError for text that is not JSON.
    """
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        raise WireTooLargeError(
            f"the document has {size} bytes; at most {max_bytes} are accepted", field="(body)"
        )
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireFormatError(f"not valid UTF-8 JSON ({exc})", field="(body)") from exc


def _object(value: object, field: str, fields: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WireFormatError(f"{_show(value)} must be a JSON object", field=field)
    obj = cast(dict[str, Any], value)
    missing = sorted(fields - obj.keys())
    if missing:
        name = f"{field}.{missing[0]}" if field else missing[0]
        raise WireFormatError("is missing", field=name)
    unknown = sorted(obj.keys() - fields)
    if unknown:
        name = f"{field}.{unknown[0]}" if field else unknown[0]
        raise WireFormatError(f"is not a known field; accepted: {sorted(fields)}", field=name)
    return obj


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _str(obj: Mapping[str, Any], key: str, prefix: str, limit: int) -> str:
    field = f"{prefix}{key}"
    value = obj[key]
    # bool is not a str, but be explicit about what the type check refuses.
    if not isinstance(value, str):
        raise WireFormatError(f"{_show(value)} must be a string", field=field)
    if len(value) > limit:
        raise WireTooLargeError(
            f"has {len(value)} characters; at most {limit} are accepted", field=field
        )
    return value


def _opt_str(obj: Mapping[str, Any], key: str, prefix: str, limit: int) -> str | None:
    return None if obj[key] is None else _str(obj, key, prefix, limit)


def _int(obj: Mapping[str, Any], key: str, prefix: str) -> int:
    value = obj[key]
    # JSON true/false decode to bool, a subclass of int: refuse them as numbers.
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireFormatError(f"{_show(value)} must be an integer", field=f"{prefix}{key}")
    return value


def _aware(obj: Mapping[str, Any], key: str, prefix: str = "") -> dt.datetime:
    text = _str(obj, key, prefix, 64)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise WireFormatError(
            f"{text!r} is not an ISO 8601 date-time like '2026-03-29T10:00:00+02:00'",
            field=prefix + key,
        ) from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise WireFormatError(
            f"{text!r} has no UTC offset; send e.g. '2026-03-29T10:00:00+02:00'",
            field=prefix + key,
        )
    return value


def _zone(obj: Mapping[str, Any], key: str) -> str:
    name = _str(obj, key, "", 64)
    try:
        return canonical_zone(name)
    except MeetingValueError as exc:
        raise WireFormatError(
            f"{name!r} is not an IANA time zone name like 'Europe/Berlin'", field=key
        ) from exc


def _attendees(value: object) -> tuple[Attendee, ...]:
    if not isinstance(value, list):
        raise WireFormatError(f"{_show(value)} must be a list", field="attendees")
    if len(value) > MAX_ATTENDEES:
        raise WireTooLargeError(
            f"has {len(value)} entries; at most {MAX_ATTENDEES} are accepted", field="attendees"
        )
    out = []
    for index, item in enumerate(value):
        field = f"attendees[{index}]"
        obj = _object(item, field, ATTENDEE_FIELDS)
        address = _str(obj, "address", f"{field}.", MAX_ADDRESS_CHARS)
        role = _str(obj, "role", f"{field}.", 16)
        try:
            out.append(Attendee(address, role))  # type: ignore[arg-type]
        except MeetingValueError as exc:
            bad = "role" if role not in ("required", "optional", "resource") else "address"
            raise WireFormatError(str(exc), field=f"{field}.{bad}") from exc
    return tuple(out)


def _int_list(obj: Mapping[str, Any], key: str, prefix: str, limit: int) -> tuple[int, ...]:
    value = obj[key]
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise WireFormatError(f"{_show(value)} must be a list of integers", field=prefix + key)
    if len(value) > limit:
        raise WireTooLargeError(f"has {len(value)} entries; at most {limit}", field=prefix + key)
    return tuple(value)


def _list(obj: Mapping[str, Any], key: str, prefix: str, limit: int) -> list[Any]:
    value = obj[key]
    if not isinstance(value, list):
        raise WireFormatError(f"{_show(value)} must be a list", field=prefix + key)
    if len(value) > limit:
        raise WireTooLargeError(f"has {len(value)} entries; at most {limit}", field=prefix + key)
    return value


def _recurrence(value: object) -> Recurrence | None:
    if value is None:
        return None
    prefix = "recurrence."
    # Format 2 says so; without "format" the object is the first format, field for field.
    v2 = isinstance(value, dict) and "format" in value
    obj = _object(value, "recurrence", RECURRENCE_V2_FIELDS if v2 else RECURRENCE_FIELDS)
    if v2 and (isinstance(obj["format"], bool) or obj["format"] != 2):
        raise WireFormatError(
            f"{_show(obj['format'])} is not a known recurrence format; accepted: 2 (or no "
            "'format' for the first one)",
            field=prefix + "format",
        )
    frequency = _str(obj, "frequency", prefix, 16)
    interval = _int(obj, "interval", prefix)
    by_day = obj["by_day"]
    if not isinstance(by_day, list) or not all(isinstance(d, str) for d in by_day):
        raise WireFormatError(f"{_show(by_day)} must be a list of strings", field=prefix + "by_day")
    if len(by_day) > (77 if v2 else 7):
        raise WireTooLargeError(f"has {len(by_day)} weekdays", field=prefix + "by_day")
    count = None if obj["count"] is None else _int(obj, "count", prefix)
    until_text = _opt_str(obj, "until", prefix, 16)
    until = None
    if until_text is not None:
        try:
            until = dt.date.fromisoformat(until_text)
        except ValueError as exc:
            raise WireFormatError(
                f"{until_text!r} is not an ISO 8601 date like '2026-12-31'", field=prefix + "until"
            ) from exc
    more: dict[str, Any] = {}
    if v2:
        more["by_month_day"] = _int_list(obj, "by_month_day", prefix, 62)
        more["by_month"] = _int_list(obj, "by_month", prefix, 12)
        more["by_set_pos"] = _int_list(obj, "by_set_pos", prefix, 366)
        more["week_start"] = _str(obj, "week_start", prefix, 2)
        exdates = _list(obj, "exdates", prefix, MAX_EXCEPTIONS)
        more["exdates"] = tuple(
            _aware({f"exdates[{i}]": d}, f"exdates[{i}]", prefix) for i, d in enumerate(exdates)
        )
        modified = []
        for index, item in enumerate(_list(obj, "modified", prefix, MAX_EXCEPTIONS)):
            field = f"{prefix}modified[{index}]"
            entry = _object(item, field, MODIFIED_FIELDS)
            times = {k: _aware(entry, k, f"{field}.") for k in sorted(MODIFIED_FIELDS)}
            try:
                modified.append(ModifiedOccurrence(**times))
            except RecurrenceError as exc:
                raise WireFormatError(str(exc), field=f"{field}.{exc.field}") from exc
        more["modified"] = tuple(modified)
    try:
        return Recurrence(frequency, interval, tuple(by_day), count, until, **more)  # type: ignore[arg-type]
    except RecurrenceError as exc:
        raise WireFormatError(str(exc), field=prefix + exc.field) from exc


def meeting_from_json(value: object) -> Meeting:
    """The Meeting a JSON object (already parsed) describes.

    Raises WireFormatError naming the field (missing, wrong type, naive datetime, unknown
    zone, end before start ...) and WireTooLargeError for a field over its limit.
    """
    obj = _object(value, "", MEETING_FIELDS)
    body = _str(obj, "body", "", MAX_MEETING_BYTES)
    body_type = _str(obj, "body_type", "", 8)
    if body_type not in ("Text", "HTML"):
        raise WireFormatError(f"{body_type!r} must be 'Text' or 'HTML'", field="body_type")
    start, end = _aware(obj, "start"), _aware(obj, "end")
    start_tz, end_tz = _zone(obj, "start_tz"), _zone(obj, "end_tz")
    meeting_id = _str(obj, "meeting_id", "", MAX_ID_CHARS)
    if not meeting_id:
        raise WireFormatError("must not be empty", field="meeting_id")
    if end < start:
        raise WireFormatError(
            f"{end.isoformat()!r} is before start {start.isoformat()!r}", field="end"
        )
    fields = {
        "mailbox": _str(obj, "mailbox", "", MAX_ADDRESS_CHARS),
        "organizer": _str(obj, "organizer", "", MAX_ADDRESS_CHARS),
        "version": _str(obj, "version", "", MAX_ID_CHARS),
        "uid": _str(obj, "uid", "", MAX_ID_CHARS),
        "subject": _str(obj, "subject", "", MAX_SUBJECT_CHARS),
        "location": _str(obj, "location", "", MAX_LOCATION_CHARS),
    }
    attendees = _attendees(obj["attendees"])
    recurrence = _recurrence(obj["recurrence"])
    try:
        return Meeting(
            meeting_id=meeting_id,
            start=start,
            end=end,
            start_tz=start_tz,
            end_tz=end_tz,
            body=body,
            body_type=body_type,  # type: ignore[arg-type]
            attendees=attendees,
            recurrence=recurrence,
            **fields,
        )
    except MeetingValueError as exc:  # pragma: no cover - every check above comes first
        raise WireFormatError(str(exc), field="(meeting)") from exc


def join_template_from_json(value: object, field: str = "template") -> JoinTemplate:
    """The JoinTemplate a JSON object describes; WireFormatError names the field."""
    obj = _object(value, field, TEMPLATE_FIELDS)
    prefix = f"{field}." if field else ""
    header = _str(obj, "header", prefix, 64 * 1024)
    footer = _str(obj, "footer", prefix, 64 * 1024)
    for name, text in (("header", header), ("footer", footer)):
        try:
            JoinTemplate(**{name: text})
        except MeetingError as exc:
            raise WireFormatError(str(exc), field=prefix + name) from exc
    return JoinTemplate(header=header, footer=footer)


def join_details_from_json(value: object) -> JoinDetails:
    """The JoinDetails a JSON object describes; WireFormatError names the field."""
    obj = _object(value, "", JOIN_DETAILS_FIELDS)
    join_url = _str(obj, "join_url", "", 2048)
    sip_address = _opt_str(obj, "sip_address", "", 512)
    meeting_number = _opt_str(obj, "meeting_number", "", 32)
    template = join_template_from_json(obj["template"])
    for name, kwargs in (
        ("join_url", {"join_url": join_url}),
        ("sip_address", {"join_url": "https://x.invalid/", "sip_address": sip_address}),
        ("meeting_number", {"join_url": "https://x.invalid/", "meeting_number": meeting_number}),
    ):
        try:
            JoinDetails(**kwargs)
        except MeetingError as exc:
            raise WireFormatError(str(exc), field=name) from exc
    return JoinDetails(
        join_url=join_url,
        template=template,
        sip_address=sip_address,
        meeting_number=meeting_number,
    )


def meeting_from_bytes(data: bytes | str) -> Meeting:
    """Parse and check a meeting document (size first, then JSON, then every field)."""
    return meeting_from_json(loads(data))


def join_details_from_bytes(data: bytes | str) -> JoinDetails:
    """Parse and check a join-details document."""
    return join_details_from_json(loads(data))


# ---------------------------------------------------------------- user status

USER_STATUSES = ("ok", "error", "paused")
OOO_STATES = ("enabled", "scheduled", "disabled", "unsupported")
STATUS_FIELDS = frozenset({"status", "reason", "out_of_office"})
OOO_FIELDS = frozenset({"state", "active", "until"})
MAX_REASON_CHARS = 1024


@dataclass(frozen=True)
class StatusReport:
    """What the connector reports about one mailbox: ``ok``/``error``/``paused`` with a
    reason, and the out-of-office state (its reply text is never sent)."""

    status: str
    reason: str = ""
    out_of_office: OutOfOffice | None = None

    def __post_init__(self) -> None:
        if self.status not in USER_STATUSES:
            raise WireFormatError(f"{self.status!r} must be one of {USER_STATUSES}", field="status")
        if len(self.reason) > MAX_REASON_CHARS:
            raise WireTooLargeError(
                f"has {len(self.reason)} characters; at most {MAX_REASON_CHARS}", field="reason"
            )


def user_status_to_json(status: StatusReport) -> dict[str, Any]:
    """The status as a JSON-ready dict; the out-of-office reply text is left out."""
    ooo = status.out_of_office
    return {
        "status": status.status,
        "reason": status.reason,
        "out_of_office": None
        if ooo is None
        else {
            "state": ooo.state,
            "active": ooo.active,
            "until": None if ooo.end is None else _datetime_to_json(ooo.end),
        },
    }


def user_status_from_json(value: object) -> StatusReport:
    """The StatusReport a JSON object describes; WireFormatError names the field."""
    obj = _object(value, "", STATUS_FIELDS)
    status = _str(obj, "status", "", 16)
    reason = _str(obj, "reason", "", MAX_REASON_CHARS)
    if status not in USER_STATUSES:
        raise WireFormatError(f"{status!r} must be one of {USER_STATUSES}", field="status")
    ooo: OutOfOffice | None = None
    if obj["out_of_office"] is not None:
        inner = _object(obj["out_of_office"], "out_of_office", OOO_FIELDS)
        state = _str(inner, "state", "out_of_office.", 16)
        if state not in OOO_STATES:
            raise WireFormatError(
                f"{state!r} must be one of {OOO_STATES}", field="out_of_office.state"
            )
        active = inner["active"]
        if not isinstance(active, bool):
            raise WireFormatError(
                f"{_show(active)} must be true or false", field="out_of_office.active"
            )
        until = None if inner["until"] is None else _aware(inner, "until", "out_of_office.")
        ooo = OutOfOffice(state=state, active=active, end=until)  # type: ignore[arg-type]
    return StatusReport(status, reason, ooo)
