"""Reading calendar items out of a SyncFolderItems page, fast enough for 15,000 mailboxes.

exchangelib's ``CalendarItem.from_xml`` runs all ~80 CalendarItem fields over every element
(each a lookup that finds nothing), builds nested ``Attendee``/``Mailbox`` objects through
its generic machinery, re-creates the same ``EWSTimeZone`` for every item and parses every
date with ``strptime``; on an initial sync that was most of the connector's CPU. An
:class:`ItemView` holds only the :data:`FIELDS` the connector asks the server for:

- most fields are parsed by exchangelib's own field objects, so the values are exactly what
  a ``CalendarItem`` would hold (subject, body with its type, location, recurrence and the
  series' modified and deleted occurrences, uid);
- the time zones go through exchangelib's field too, once per distinct Windows zone id
  (the result depends on the id alone): a year of meetings has a handful of zones;
- start and end in EWS's canonical UTC form (``2027-01-04T09:00:00Z``, what Exchange sends)
  become the same ``EWSDateTime`` ``strptime`` would give, built directly; any other form
  goes to exchangelib's field;
- the organizer and attendees are read as their SMTP addresses, all the connector uses of
  them (``t:Mailbox/t:EmailAddress``, types.xsd ``EmailAddressType``).

Written by hand because exchangelib has no cheaper parse; what it reads stays exchangelib's.
"""

from __future__ import annotations

import threading
from typing import Any

from exchangelib import UTC
from exchangelib.ewsdatetime import EWSDateTime
from exchangelib.items import CalendarItem
from exchangelib.properties import EWSElement, ItemId
from exchangelib.util import TNS

#: The CalendarItem fields a meeting needs (everything else is left on the server).
FIELDS = (
    "subject",
    "body",
    "start",
    "end",
    "_start_timezone",
    "_end_timezone",
    "location",
    "organizer",
    "required_attendees",
    "optional_attendees",
    "resources",
    "recurrence",
    # A series' exceptions live on its master (EWS never lists occurrences as items).
    "modified_occurrences",
    "deleted_occurrences",
    "uid",
)
CALENDAR_ITEM_TAG = CalendarItem.response_tag()
_ITEM_ID_TAG = ItemId.response_tag()
_ADDRESS_PATH = f"{{{TNS}}}Mailbox/{{{TNS}}}EmailAddress"
_ATTENDEE_PATH = f"{{{TNS}}}Attendee/{_ADDRESS_PATH}"

_BY_NAME = {f: CalendarItem.get_field_by_fieldname(f) for f in FIELDS}
#: Parsed by exchangelib's field as it is.
_PLAIN = tuple(
    _BY_NAME[f]
    for f in (
        "subject",
        "body",
        "location",
        "recurrence",
        "modified_occurrences",
        "deleted_occurrences",
        "uid",
    )
)
_TIMES = tuple(_BY_NAME[f] for f in ("start", "end"))
_ZONES = tuple(_BY_NAME[f] for f in ("_start_timezone", "_end_timezone"))
_ORGANIZER_TAG = _BY_NAME["organizer"].response_tag()
_ATTENDEE_TAGS = tuple(
    (f, _BY_NAME[f].response_tag())
    for f in ("required_attendees", "optional_attendees", "resources")
)

_zone_lock = threading.Lock()
_zones: dict[tuple[str, str | None], Any] = {}


class ItemView:
    """The :data:`FIELDS` of one calendar item (organizer and attendees as addresses)."""

    __slots__ = ("changekey", "id", *FIELDS)

    def __init__(self, item_id: str | None, changekey: str | None, values: dict[str, Any]) -> None:
        self.id = item_id
        self.changekey = changekey
        for name, value in values.items():
            setattr(self, name, value)


def _utc(text: str | None) -> EWSDateTime | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` as ``EWSDateTime.from_string`` would return it, else None."""
    if (
        text is None
        or len(text) != 20
        or text[19] != "Z"
        or text[4] != "-"
        or text[7] != "-"
        or text[10] != "T"
        or text[13] != ":"
        or text[16] != ":"
    ):
        return None
    try:
        return EWSDateTime(
            int(text[0:4]),
            int(text[5:7]),
            int(text[8:10]),
            int(text[11:13]),
            int(text[14:16]),
            int(text[17:19]),
            tzinfo=UTC,
        )
    except ValueError:
        return None  # out of range: exchangelib's field decides what that becomes


def _zone(field: Any, elem: Any, account: Any) -> Any:
    zone_elem = elem.find(field.response_tag())
    if zone_elem is None:
        return field.default
    key = (field.name, zone_elem.get("Id") or zone_elem.get("Name"))
    with _zone_lock:
        if key in _zones:
            return _zones[key]
    value = field.from_xml(elem=elem, account=account)
    with _zone_lock:
        # Bounded by the Windows zone ids there are (~140) times two fields.
        if len(_zones) < 4096:
            _zones[key] = value
    return value


def item_view(elem: Any, account: Any) -> ItemView:
    """Parse a ``t:CalendarItem`` element into an :class:`ItemView`, then free the element."""
    values: dict[str, Any] = {f.name: f.from_xml(elem=elem, account=account) for f in _PLAIN}
    for field in _TIMES:
        child = elem.find(field.response_tag())
        fast = None if child is None else _utc(child.text)
        values[field.name] = (
            fast if fast is not None else field.from_xml(elem=elem, account=account)
        )
    for field in _ZONES:
        values[field.name] = _zone(field, elem, account)
    organizer = elem.find(_ORGANIZER_TAG)
    values["organizer"] = None if organizer is None else (organizer.findtext(_ADDRESS_PATH) or None)
    for name, tag in _ATTENDEE_TAGS:
        people = elem.find(tag)
        values[name] = (
            None
            if people is None
            else [a.text for a in people.iterfind(_ATTENDEE_PATH) if a.text] or None
        )
    id_elem = elem.find(_ITEM_ID_TAG)
    view = ItemView(
        None if id_elem is None else id_elem.get("Id"),
        None if id_elem is None else id_elem.get("ChangeKey"),
        values,
    )
    # As exchangelib does after parsing an element: a 512-item page is freed as it is read.
    EWSElement._clear(elem)
    return view
