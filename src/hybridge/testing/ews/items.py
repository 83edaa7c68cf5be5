"""Folder and item operations: GetFolder, FindFolder, FindItem, GetItem, CreateItem,
UpdateItem, DeleteItem, plus the ConvertId / ResolveNames probes clients send first.

Each handler takes the request context and the operation element and returns the
``m:<Op>Response`` element; per-item problems become error response messages, as in EWS.
"""

from __future__ import annotations

import copy
import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from hybridge.testing.ews.directory import Directory
from hybridge.testing.ews.itemblob import Item
from hybridge.testing.ews.mailbox import Folder
from hybridge.testing.ews.soap import (
    M,
    T,
    el,
    local,
    operation_response,
    response_message,
    sub,
)
from hybridge.testing.ews.store import MailboxStore

#: Item element name per item class (types.xsd); everything else is a Message.
ITEM_ELEMENTS = {"IPM.Appointment": "CalendarItem"}
ELEMENT_CLASSES = {"CalendarItem": "IPM.Appointment", "Message": "IPM.Note"}


@dataclass(frozen=True)
class RequestContext:
    """Who is calling and on whose mailbox the request acts."""

    store: MailboxStore
    directory: Directory
    caller_smtp: str
    mailbox: str


class OperationError(Exception):
    """A per-message EWS error: ``code`` is the ResponseCode."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


# -- ids and shapes -------------------------------------------------------------------------


def resolve_folder(ctx: RequestContext, elem: ET.Element) -> Folder:
    """Resolve a ``t:FolderId`` or ``t:DistinguishedFolderId``; raises OperationError."""
    name = local(elem.tag)
    if name == "DistinguishedFolderId":
        mailbox_elem = elem.find(f"{{{T}}}Mailbox/{{{T}}}EmailAddress")
        owner = (mailbox_elem.text or "").lower() if mailbox_elem is not None else ctx.mailbox
        if owner != ctx.mailbox:
            # Delegate access to another mailbox is not emulated: only the mailbox the
            # request acts on (the caller's, or the impersonated one) is reachable.
            raise OperationError("ErrorAccessDenied", f"no delegate access to {owner}")
        box = ctx.store.ensure_mailbox(ctx.mailbox)
        folder = box.distinguished(elem.get("Id", ""))
        if folder is None:
            raise OperationError("ErrorFolderNotFound", f"no folder {elem.get('Id')!r}")
        return folder
    folder = ctx.store.folder(elem.get("Id", ""))
    if folder is None or folder.mailbox != ctx.mailbox:
        raise OperationError("ErrorFolderNotFound", "The specified folder could not be found.")
    return folder


def resolve_item(ctx: RequestContext, elem: ET.Element | None) -> Item:
    item = None if elem is None else ctx.store.item(elem.get("Id", ""))
    if item is None or item.mailbox != ctx.mailbox:
        raise OperationError(
            "ErrorItemNotFound", "The specified object was not found in the store."
        )
    return item


def requested_fields(shape: ET.Element | None) -> set[str] | None:
    """Property names asked for, or None for "all" (Default/AllProperties)."""
    if shape is None:
        return None
    base = shape.findtext(f"{{{T}}}BaseShape", "Default")
    extra = {
        (f.get("FieldURI") or "").split(":")[-1]
        for f in shape.iterfind(f"{{{T}}}AdditionalProperties/{{{T}}}FieldURI")
    }
    if base == "IdOnly":
        return extra
    return None


def folder_element(ctx: RequestContext, folder: Folder) -> ET.Element:
    elem = el(T, folder.element)
    sub(elem, T, "FolderId", Id=folder.folder_id, ChangeKey="AQAAAA==")
    if folder.parent_id:
        sub(elem, T, "ParentFolderId", Id=folder.parent_id, ChangeKey="AQAAAA==")
    if folder.folder_class:
        sub(elem, T, "FolderClass", folder.folder_class)
    sub(elem, T, "DisplayName", folder.display_name)
    sub(elem, T, "TotalCount", str(ctx.store.item_count(folder)))
    children = [
        f
        for f in ctx.store.mailbox(folder.mailbox).folders.values()
        if f.parent_id == folder.folder_id
    ]
    sub(elem, T, "ChildFolderCount", str(len(children)))
    if folder.element == "Folder":
        sub(elem, T, "UnreadCount", "0")
    return elem


def item_element(item: Item, fields: set[str] | None) -> ET.Element:
    elem = el(T, ITEM_ELEMENTS.get(item.item_class, "Message"))
    sub(elem, T, "ItemId", Id=item.item_id, ChangeKey=item.change_key)
    sub(elem, T, "ParentFolderId", Id=item.folder_id, ChangeKey="AQAAAA==")
    sub(elem, T, "ItemClass", item.item_class)
    for name, prop in item.props.items():  # a fresh parse: safe to hand out
        if fields is None or name in fields:
            elem.append(prop)
    return elem


def _attr(value: str) -> str:
    # What ElementTree's attribute escaping does, for the few values spliced as bytes.
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"),
                         ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;")):  # fmt: skip
        value = value.replace(raw, escaped)
    return value


def item_fragment(item: Item, fields: set[str] | None) -> bytes | None:
    """The bytes ElementTree would write for ``item_element(item, fields)`` inside an
    envelope declaring ``t:``, copied from the stored blob; None when the item's spans are
    unknown (then use :func:`item_element`)."""
    if item.spans is None:
        return None
    tag = f"t:{ITEM_ELEMENTS.get(item.item_class, 'Message')}"
    head = (
        f'<{tag}><t:ItemId Id="{_attr(item.item_id)}" ChangeKey="{_attr(item.change_key)}" />'
        f'<t:ParentFolderId Id="{_attr(item.folder_id)}" ChangeKey="AQAAAA==" />'
        f"<t:ItemClass>{_attr(item.item_class)}</t:ItemClass>"
    ).encode()
    blob = item.blob
    props = b"".join(
        blob[start:end] for name, start, end in item.spans if fields is None or name in fields
    )
    return head + props + f"</{tag}>".encode()


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# -- operations -----------------------------------------------------------------------------


def convert_id(ctx: RequestContext, op: ET.Element) -> ET.Element:
    """ConvertId: ids are opaque here; every one is malformed (clients use it as a probe)."""
    messages = [
        response_message("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")
        for _ in op.iterfind(f"{{{M}}}SourceIds/*")
    ] or [response_message("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")]
    return operation_response("ConvertId", messages)


def resolve_names(ctx: RequestContext, op: ET.Element) -> ET.Element:
    return operation_response(
        "ResolveNames",
        [
            response_message(
                "ResolveNames", "ErrorNameResolutionNoResults", "No results were found."
            )
        ],
    )


def get_folder(ctx: RequestContext, op: ET.Element) -> ET.Element:
    messages = []
    for ref in op.iterfind(f"{{{M}}}FolderIds/*"):
        try:
            folder = resolve_folder(ctx, ref)
        except OperationError as exc:
            messages.append(response_message("GetFolder", exc.code, exc.text))
            continue
        msg = response_message("GetFolder")
        sub(msg, M, "Folders").append(folder_element(ctx, folder))
        messages.append(msg)
    return operation_response("GetFolder", messages)


def find_folder(ctx: RequestContext, op: ET.Element) -> ET.Element:
    messages = []
    for ref in op.iterfind(f"{{{M}}}ParentFolderIds/*"):
        try:
            parent = resolve_folder(ctx, ref)
        except OperationError as exc:
            messages.append(response_message("FindFolder", exc.code, exc.text))
            continue
        box = ctx.store.mailbox(parent.mailbox)
        children = [f for f in box.folders.values() if f.parent_id == parent.folder_id]
        msg = response_message("FindFolder")
        root = sub(
            msg,
            M,
            "RootFolder",
            IndexedPagingOffset=str(len(children)),
            TotalItemsInView=str(len(children)),
            IncludesLastItemInRange="true",
        )
        folders = sub(root, T, "Folders")
        for child in children:
            folders.append(folder_element(ctx, child))
        messages.append(msg)
    return operation_response("FindFolder", messages)


def _matches(item: Item, restriction: ET.Element | None) -> bool:
    """Evaluate the restriction subset we support: IsEqualTo / Contains on a FieldURI."""
    if restriction is None or len(restriction) == 0:
        return True
    expr = restriction[0]
    kind = local(expr.tag)
    uri = expr.find(f"{{{T}}}FieldURI")
    name = (uri.get("FieldURI") or "").split(":")[-1] if uri is not None else ""
    constant = expr.find(f".//{{{T}}}Constant")
    want = constant.get("Value", "") if constant is not None else ""
    have = item.text(name) or ""
    if kind == "IsEqualTo":
        return have == want
    if kind == "Contains":
        return want.lower() in have.lower()
    raise OperationError(
        "ErrorUnsupportedPathForQuery", f"the emulator supports IsEqualTo/Contains, not {kind}"
    )


def find_item(ctx: RequestContext, op: ET.Element) -> ET.Element:
    fields = requested_fields(op.find(f"{{{M}}}ItemShape"))
    restriction = op.find(f"{{{M}}}Restriction")
    view = op.find(f"{{{M}}}CalendarView")
    paging = op.find(f"{{{M}}}IndexedPageItemView")
    messages = []
    for ref in op.iterfind(f"{{{M}}}ParentFolderIds/*"):
        try:
            folder = resolve_folder(ctx, ref)
            found = [i for i in ctx.store.items(folder) if _matches(i, restriction)]
        except OperationError as exc:
            messages.append(response_message("FindItem", exc.code, exc.text))
            continue
        if view is not None:
            lo, hi = _parse_time(view.get("StartDate")), _parse_time(view.get("EndDate"))
            # A calendar view returns items overlapping [StartDate, EndDate).
            found = [
                i
                for i in found
                if (s := _parse_time(i.text("Start"))) is not None
                and (e := _parse_time(i.text("End"))) is not None
                and (hi is None or s < hi)
                and (lo is None or e > lo)
            ]
        found.sort(key=lambda i: i.text("Start") or "")
        total = len(found)
        offset = int(paging.get("Offset", "0")) if paging is not None else 0
        limit_attr = paging if paging is not None else view
        limit = (
            int(limit_attr.get("MaxEntriesReturned", "1000")) if limit_attr is not None else 1000
        )
        page = found[offset : offset + limit]
        msg = response_message("FindItem")
        root = sub(
            msg,
            M,
            "RootFolder",
            IndexedPagingOffset=str(offset + len(page)),
            TotalItemsInView=str(total),
            IncludesLastItemInRange="true" if offset + len(page) >= total else "false",
        )
        items = sub(root, T, "Items")
        for item in page:
            items.append(item_element(item, fields))
        messages.append(msg)
    return operation_response("FindItem", messages)


def get_item(ctx: RequestContext, op: ET.Element) -> ET.Element:
    fields = requested_fields(op.find(f"{{{M}}}ItemShape"))
    if fields is not None and not fields:
        fields = None  # GetItem with IdOnly and nothing else still returns the id only below
    messages = []
    for ref in op.iterfind(f"{{{M}}}ItemIds/*"):
        try:
            item = resolve_item(ctx, ref)
        except OperationError as exc:
            messages.append(response_message("GetItem", exc.code, exc.text))
            continue
        msg = response_message("GetItem")
        sub(msg, M, "Items").append(item_element(item, fields))
        messages.append(msg)
    return operation_response("GetItem", messages)


def _props_of(item_elem: ET.Element) -> dict[str, ET.Element]:
    # Keep the client's elements as they are; ids are ours to assign.
    return {
        local(child.tag): copy.deepcopy(child)
        for child in item_elem
        if local(child.tag) not in ("ItemId", "ParentFolderId", "ItemClass")
    }


def create_item(ctx: RequestContext, op: ET.Element) -> ET.Element:
    target_ref = op.find(f"{{{M}}}SavedItemFolderId/*")
    messages = []
    for item_elem in op.iterfind(f"{{{M}}}Items/*"):
        kind = local(item_elem.tag)
        try:
            if target_ref is not None:
                folder = resolve_folder(ctx, target_ref)
            else:
                box = ctx.store.ensure_mailbox(ctx.mailbox)
                default = "calendar" if kind == "CalendarItem" else "inbox"
                found = box.distinguished(default)
                assert found is not None
                folder = found
        except OperationError as exc:
            messages.append(response_message("CreateItem", exc.code, exc.text))
            continue
        item_class = item_elem.findtext(f"{{{T}}}ItemClass") or ELEMENT_CLASSES.get(
            kind, "IPM.Note"
        )
        props = _props_of(item_elem)
        if kind == "CalendarItem" and "Organizer" not in props:
            # Exchange makes the mailbox owner the organizer of a meeting created in it.
            organizer = el(T, "Organizer")
            sub(sub(organizer, T, "Mailbox"), T, "EmailAddress", ctx.mailbox)
            props["Organizer"] = organizer
        item = ctx.store.create_item(folder, item_class, props)
        msg = response_message("CreateItem")
        out = sub(sub(msg, M, "Items"), T, kind)
        sub(out, T, "ItemId", Id=item.item_id, ChangeKey=item.change_key)
        messages.append(msg)
    return operation_response("CreateItem", messages)


def update_item(ctx: RequestContext, op: ET.Element) -> ET.Element:
    messages = []
    for change in op.iterfind(f"{{{M}}}ItemChanges/{{{T}}}ItemChange"):
        try:
            item = resolve_item(ctx, change.find(f"{{{T}}}ItemId"))
        except OperationError as exc:
            messages.append(response_message("UpdateItem", exc.code, exc.text))
            continue
        updates: dict[str, ET.Element | None] = {}
        for update in change.iterfind(f"{{{T}}}Updates/*"):
            uri = update.find(f"{{{T}}}FieldURI")
            if uri is None:
                continue  # extended / indexed properties are not emulated
            name = (uri.get("FieldURI") or "").split(":")[-1]
            if local(update.tag) == "DeleteItemField":
                updates[name] = None
                continue
            holder = next((c for c in update if local(c.tag) != "FieldURI"), None)
            value = None if holder is None else holder.find(f"{{{T}}}{name}")
            if value is not None:
                updates[name] = copy.deepcopy(value)
        ctx.store.update_item(item, updates)
        msg = response_message("UpdateItem")
        out = sub(sub(msg, M, "Items"), T, ITEM_ELEMENTS.get(item.item_class, "Message"))
        sub(out, T, "ItemId", Id=item.item_id, ChangeKey=item.change_key)
        conflicts = sub(msg, M, "ConflictResults")
        sub(conflicts, T, "Count", "0")
        messages.append(msg)
    return operation_response("UpdateItem", messages)


def delete_item(ctx: RequestContext, op: ET.Element) -> ET.Element:
    messages = []
    for ref in op.iterfind(f"{{{M}}}ItemIds/*"):
        try:
            item = resolve_item(ctx, ref)
        except OperationError as exc:
            messages.append(response_message("DeleteItem", exc.code, exc.text))
            continue
        ctx.store.delete_item(item)
        messages.append(response_message("DeleteItem"))
    return operation_response("DeleteItem", messages)


Handler = Callable[[RequestContext, ET.Element], ET.Element]

ITEM_OPERATIONS: dict[str, Handler] = {
    "ConvertId": convert_id,
    "ResolveNames": resolve_names,
    "GetFolder": get_folder,
    "FindFolder": find_folder,
    "FindItem": find_item,
    "GetItem": get_item,
    "CreateItem": create_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
}
