"""Stored items: an item's EWS properties kept as the bytes of their XML elements.

A parsed element tree costs ~5 KiB per meeting, its bytes under 1 KiB; the spans of each
property in those bytes let a SyncFolderItems answer copy the requested properties instead
of parsing and re-serializing every item (see ``items.item_fragment``).
"""

from __future__ import annotations

import base64
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat

from hybridge.testing.ews.soap import T, el

#: How ``ET.tostring`` opens and closes a ``t:Props`` wrapper whose children use only the
#: types namespace (the prefix is registered by ``soap``).
WRAP_OPEN = f'<t:Props xmlns:t="{T}">'.encode()
WRAP_CLOSE = b"</t:Props>"

#: A property's name and its bytes' [start, end) in an item's blob.
Span = tuple[str, int, int]


def pack_props(props: dict[str, ET.Element]) -> tuple[bytes, tuple[Span, ...] | None]:
    """Serialize ``props`` under a ``t:Props`` wrapper; also where each property's bytes are.

    The spans let a SyncFolderItems answer copy the requested properties' bytes instead of
    parsing and re-serializing every item (see ``items.item_fragment``).
    """
    wrapper = el(T, "Props")
    wrapper.extend(props.values())
    blob = ET.tostring(wrapper)
    return blob, _spans(blob)


def _spans(blob: bytes) -> tuple[Span, ...] | None:
    """Each top-level property's local name and bytes in ``blob`` (expat's byte offsets).

    ``None`` unless every element below the wrapper is ``t:``-prefixed and declares no
    namespace: only then are a property's bytes valid wherever ``t:`` is declared.
    """
    if not (blob.startswith(WRAP_OPEN) and blob.endswith(WRAP_CLOSE)):
        return None
    parser = expat.ParserCreate()
    starts: list[tuple[str, int]] = []
    depth = 0
    portable = True

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth, portable
        if depth == 1:
            starts.append((name, parser.CurrentByteIndex))
        if depth >= 1 and (not name.startswith("t:") or any(a.startswith("xmlns") for a in attrs)):
            portable = False
        depth += 1

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.Parse(blob, True)
    if not portable:
        return None
    bounds = [at for _, at in starts] + [len(blob) - len(WRAP_CLOSE)]
    return tuple((name[2:], at, bounds[i + 1]) for i, (name, at) in enumerate(starts))


@dataclass(slots=True)
class Item:
    """One stored item. Its properties are kept serialized (``blob``): a parsed element tree
    costs ~5 KiB per meeting, the bytes under 1 KiB, which is what lets a benchmark hold a
    year of meetings for a thousand mailboxes. ``props`` parses a fresh copy on each access;
    change an item through :meth:`MailboxStore.update_item`. ``spans`` locates each
    property's bytes in the blob (``None``: parse instead).
    """

    item_id: str
    change_key: str
    folder_id: str
    mailbox: str
    item_class: str
    blob: bytes = b""
    spans: tuple[Span, ...] | None = None

    @property
    def props(self) -> dict[str, ET.Element]:
        """Element local name -> element (types namespace), freshly parsed."""
        root = ET.fromstring(self.blob)  # noqa: S314 - bytes we serialized ourselves
        return {child.tag.rsplit("}", 1)[-1]: child for child in root}

    def text(self, name: str) -> str | None:
        """The text of simple property ``name`` (``Subject``, ``Start``...), or None."""
        elem = self.props.get(name)
        return None if elem is None else (elem.text or "")

    def bump(self) -> None:
        self.change_key = base64.b64encode(os.urandom(9)).decode()
