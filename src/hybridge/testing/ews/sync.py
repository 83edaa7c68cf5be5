"""SyncFolderItems, Subscribe (streaming), Unsubscribe and GetStreamingEvents.

SyncFolderItems walks the folder's change log from the position in the client's sync state,
returns at most ``MaxChangesReturned`` (1-512, as in messages.xsd) changes in log order with
the items' current content, and a new state at the last change returned, so a client that
asks again with that state continues exactly where it stopped.

GetStreamingEvents is a long-lived HTTP response: one SOAP envelope per notification batch,
``ConnectionStatus`` OK heartbeats while idle, and ``Closed`` when ``ConnectionTimeout``
(1-30 minutes) runs out.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from hybridge.testing.ews.config import EmulatorConfig
from hybridge.testing.ews.items import (
    OperationError,
    RequestContext,
    item_element,
    item_fragment,
    requested_fields,
    resolve_folder,
)
from hybridge.testing.ews.mailbox import ChangeEvent
from hybridge.testing.ews.soap import (
    M,
    T,
    envelope,
    operation_response,
    prebuilt,
    response_message,
    sub,
)
from hybridge.testing.ews.syncstate import InvalidSyncState

#: messages.xsd restricts MaxChangesReturned to 1..512.
MAX_CHANGES_LIMIT = 512
#: Exchange caps a streaming connection at 30 minutes.
MAX_CONNECTION_TIMEOUT_MINUTES = 30

_EVENT_KIND = {"CreatedEvent": "Created", "ModifiedEvent": "Modified", "DeletedEvent": "Deleted"}
_KIND_EVENT = {v: k for k, v in _EVENT_KIND.items()}


def sync_folder_items(ctx: RequestContext, op: ET.Element) -> ET.Element:
    name = "SyncFolderItems"
    try:
        ref = op.find(f"{{{M}}}SyncFolderId/*")
        if ref is None:
            raise OperationError("ErrorInvalidArgument", "SyncFolderId is required")
        folder = resolve_folder(ctx, ref)
        raw_max = op.findtext(f"{{{M}}}MaxChangesReturned", "")
        if not raw_max.isdigit() or not 1 <= int(raw_max) <= MAX_CHANGES_LIMIT:
            raise OperationError(
                "ErrorInvalidArgument",
                f"MaxChangesReturned {raw_max!r} must be 1..{MAX_CHANGES_LIMIT}",
            )
        max_changes = int(raw_max)
        state = (op.findtext(f"{{{M}}}SyncState") or "").strip()
        try:
            position = ctx.store.decode_state(folder, state) if state else 0
        except InvalidSyncState as exc:
            raise OperationError("ErrorInvalidSyncStateData", str(exc)) from exc
    except OperationError as exc:
        return operation_response(name, [response_message(name, exc.code, exc.text)])
    fields = requested_fields(op.find(f"{{{M}}}ItemShape"))
    ignored = {i.get("Id") for i in op.iterfind(f"{{{M}}}Ignore/{{{T}}}ItemId")}
    # One more than a page tells whether this page ends the log.
    events = ctx.store.events_after(folder, position, limit=max_changes + 1)
    batch = events[:max_changes]
    new_position = batch[-1].seq if batch else position
    # Within one answer an item appears once, with its latest change.
    latest: dict[str, ChangeEvent] = {}
    for event in batch:
        latest[event.item_id] = event
    msg = response_message(name)
    sub(msg, M, "SyncState", ctx.store.encode_state(folder, new_position))
    sub(msg, M, "IncludesLastItemInRange", "true" if len(events) <= max_changes else "false")
    changes = sub(msg, M, "Changes")
    for event in batch:
        if latest[event.item_id] is not event or event.item_id in ignored:
            continue
        item = ctx.store.item(event.item_id)
        if event.kind == "Deleted" or item is None:
            if event.kind == "Deleted":
                sub(sub(changes, T, "Delete"), T, "ItemId", Id=event.item_id)
            continue  # created/modified, then deleted later: its Delete comes in a later batch
        kind = "Create" if event.kind == "Created" else "Update"
        # Copy the stored bytes of the requested properties: parsing every item and
        # serializing it again was most of the emulator's time on a 512-change page.
        fragment = item_fragment(item, fields)
        if fragment is None:
            sub(changes, T, kind).append(item_element(item, fields))
        else:
            prebuilt(changes, T, kind, fragment)
    return operation_response(name, [msg])


def subscribe(ctx: RequestContext, op: ET.Element) -> ET.Element:
    name = "Subscribe"
    request = op.find(f"{{{M}}}StreamingSubscriptionRequest")
    if request is None:
        # Pull and push subscriptions need a watermark store / an outbound HTTP client.
        return operation_response(
            name,
            [
                response_message(
                    name,
                    "ErrorInvalidSubscriptionRequest",
                    "the emulator supports StreamingSubscriptionRequest only",
                )
            ],
        )
    try:
        refs = list(request.iterfind(f"{{{T}}}FolderIds/*"))
        if request.get("SubscribeToAllFolders") == "true" or not refs:
            box = ctx.store.ensure_mailbox(ctx.mailbox)
            folder_ids = list(box.folders)
        else:
            folder_ids = [resolve_folder(ctx, r).folder_id for r in refs]
    except OperationError as exc:
        return operation_response(name, [response_message(name, exc.code, exc.text)])
    kinds = [
        _EVENT_KIND[e.text or ""]
        for e in request.iterfind(f"{{{T}}}EventTypes/{{{T}}}EventType")
        if (e.text or "") in _EVENT_KIND
    ]
    sub_ = ctx.store.subscribe(ctx.mailbox, folder_ids, kinds, owner=ctx.caller_smtp)
    msg = response_message(name)
    sub(msg, M, "SubscriptionId", sub_.subscription_id)
    return operation_response(name, [msg])


def unsubscribe(ctx: RequestContext, op: ET.Element) -> ET.Element:
    name = "Unsubscribe"
    sid = op.findtext(f"{{{M}}}SubscriptionId", "")
    found = ctx.store.subscription(sid)
    if found is None or found.owner != ctx.caller_smtp:
        msg = response_message(name, "ErrorSubscriptionNotFound", "The subscription was not found.")
    else:
        ctx.store.unsubscribe(sid)
        msg = response_message(name)
    return operation_response(name, [msg])


def _status_document(status: str) -> bytes:
    msg = response_message("GetStreamingEvents")
    sub(msg, M, "ConnectionStatus", status)
    return envelope(operation_response("GetStreamingEvents", [msg]))


def _notifications_document(batches: list[tuple[str, list[ChangeEvent]]]) -> bytes:
    msg = response_message("GetStreamingEvents")
    notifications = sub(msg, M, "Notifications")
    for sid, events in batches:
        notification = sub(notifications, M, "Notification")
        sub(notification, T, "SubscriptionId", sid)
        for event in events:
            ev = sub(notification, T, _KIND_EVENT[event.kind])
            sub(ev, T, "Watermark", f"seq-{event.seq}")
            sub(ev, T, "TimeStamp", event.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"))
            sub(ev, T, "ItemId", Id=event.item_id)
            sub(ev, T, "ParentFolderId", Id=event.folder_id)
    return envelope(operation_response("GetStreamingEvents", [msg]))


def streaming_check(ctx: RequestContext, op: ET.Element) -> tuple[list[str], int] | ET.Element:
    """Validate a GetStreamingEvents request: (subscription ids, timeout) or an error response."""
    name = "GetStreamingEvents"
    sids = [s.text or "" for s in op.iterfind(f"{{{M}}}SubscriptionIds/{{{T}}}SubscriptionId")]
    raw_timeout = op.findtext(f"{{{M}}}ConnectionTimeout", "")
    if not raw_timeout.isdigit() or not 1 <= int(raw_timeout) <= MAX_CONNECTION_TIMEOUT_MINUTES:
        return operation_response(
            name,
            [
                response_message(
                    name,
                    "ErrorInvalidArgument",
                    f"ConnectionTimeout {raw_timeout!r} must be 1..30 minutes",
                )
            ],
        )
    missing = [
        s
        for s in sids
        if (found := ctx.store.subscription(s)) is None or found.owner != ctx.caller_smtp
    ]
    if missing or not sids:
        msg = response_message(name, "ErrorSubscriptionNotFound", "Subscription not found.")
        errors = sub(msg, M, "ErrorSubscriptionIds")
        for s in missing:
            sub(errors, M, "SubscriptionId", s)
        return operation_response(name, [msg])
    return sids, int(raw_timeout)


def streaming_documents(
    ctx: RequestContext,
    sids: list[str],
    timeout_minutes: int,
    config: EmulatorConfig,
    stopping: threading.Event,
) -> Iterator[bytes]:
    """Yield the envelopes of one GetStreamingEvents connection until it closes."""
    deadline = time.monotonic() + timeout_minutes * config.streaming_minute_seconds
    next_beat = time.monotonic() + config.streaming_heartbeat_seconds
    while not stopping.is_set():
        now = time.monotonic()
        if now >= deadline:
            break
        # Take and wait under one lock: an event recorded in between would otherwise sit
        # unseen until the next heartbeat.
        with ctx.store.changed:
            batches = ctx.store.take_events(sids)
            if not batches and now < next_beat:
                ctx.store.changed.wait(timeout=max(0.0, min(deadline, next_beat) - now))
                continue
        if batches:
            yield _notifications_document(batches)
        else:
            yield _status_document("OK")
            next_beat = time.monotonic() + config.streaming_heartbeat_seconds
    yield _status_document("Closed")
