"""Naming anchors by SHA-256 fingerprint, or by a unique prefix of one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from hybridge.truststore.errors import AmbiguousFingerprint, AnchorNotFound, InvalidFingerprint

T = TypeVar("T")
_HEX = frozenset("0123456789abcdef")


def normalize_fingerprint(text: str) -> str:
    """Lowercase hex without separators (``AB:CD`` and ``abcd`` name the same prefix).

    Raises:
        InvalidFingerprint: ``text`` holds something other than hex digits, ``:`` and spaces,
            or more than 64 digits.
    """
    cleaned = text.strip().replace(":", "").replace(" ", "").lower()
    if not cleaned or not set(cleaned) <= _HEX or len(cleaned) > 64:
        raise InvalidFingerprint(
            f"{text!r} is not a SHA-256 fingerprint; give up to 64 hex digits "
            "(colons allowed), as printed by 'hybridge trust list'"
        )
    return cleaned


def resolve(items: Sequence[T], text: str, fingerprint: Callable[[T], str]) -> T:
    """The one item whose fingerprint starts with ``text``.

    Raises:
        InvalidFingerprint: ``text`` is not hex.
        AnchorNotFound: no item matches.
        AmbiguousFingerprint: several items match; the error lists them.
    """
    prefix = normalize_fingerprint(text)
    matches = sorted((i for i in items if fingerprint(i).startswith(prefix)), key=fingerprint)
    if not matches:
        raise AnchorNotFound(
            f"no manual or cloud anchor has a fingerprint starting with {prefix!r}; "
            "'hybridge trust list' shows the installed anchors"
        )
    if len(matches) > 1:
        raise AmbiguousFingerprint(prefix, [fingerprint(i) for i in matches])
    return matches[0]
