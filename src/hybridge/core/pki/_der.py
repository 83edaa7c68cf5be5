"""A bounded reader for the few ASN.1 containers around certificates.

Written by hand because no maintained library does this one job well: ``cryptography``'s
PKCS#7 loaders are all-or-nothing (one bad certificate and the whole bundle is refused
without saying which one), and a general ASN.1 library (asn1crypto, pyasn1) would be a new
dependency for some forty lines of TLV walking. This module only *splits* containers into
certificate-sized DER slices; every certificate is then parsed by ``cryptography``.

It accepts BER indefinite lengths in the containers, because some PKCS#7 writers emit them
(X.690 §8.1.3.6); a certificate itself must be DER, and ``cryptography`` enforces that.
Every read is bounded by the input and nesting is bounded by ``MAX_DEPTH``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

#: Deepest nesting of indefinite-length values we follow. A PKCS#7 bundle nests four deep
#: to reach a certificate; anything far deeper is hostile input, not a bundle.
MAX_DEPTH = 32

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OBJECT_IDENTIFIER = 0x06
CONTEXT_0 = 0xA0  # [0] constructed
CONTEXT_1 = 0xA1  # [1] constructed
_END_OF_CONTENTS = b"\x00\x00"
_CONSTRUCTED = 0x20


class DerError(ValueError):
    """The bytes are not a well-formed TLV; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One type-length-value element: ``buf[start:end]`` is the whole encoding."""

    tag: int
    start: int
    content_start: int
    content_end: int
    end: int


def read_header(buf: bytes, pos: int, limit: int) -> tuple[int, int, int | None]:
    """Return ``(tag, content_start, length)``; ``length`` is ``None`` when indefinite.

    Raises ``DerError`` when the header runs past ``limit`` or is not a valid encoding.
    """
    if pos >= limit:
        raise DerError(f"expected a value at offset {pos}, found the end of the data")
    tag = buf[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        # X.690 §8.1.2.4: high tag numbers. No certificate container uses them; refusing
        # them keeps the reader small, and the caller reports the input as malformed.
        raise DerError(f"unsupported high tag number at offset {pos - 1}")
    if pos >= limit:
        raise DerError(f"the length of the value at offset {pos - 1} is missing")
    first = buf[pos]
    pos += 1
    if first < 0x80:
        return tag, pos, first
    if first == 0x80:
        if not tag & _CONSTRUCTED:
            raise DerError(f"indefinite length on a primitive value at offset {pos - 2}")
        return tag, pos, None
    count = first & 0x7F
    if count > 4:
        # Four length octets already allow 4 GiB, far beyond any input limit we accept.
        raise DerError(f"a length of {count} octets at offset {pos - 1} is too long")
    if pos + count > limit:
        raise DerError(f"the length at offset {pos - 1} runs past the end of the data")
    length = int.from_bytes(buf[pos : pos + count], "big")
    return tag, pos + count, length


def read_tlv(buf: bytes, pos: int, limit: int, depth: int = 0) -> Tlv:
    """Read the element at ``pos``, which must end at or before ``limit``.

    Raises ``DerError`` on truncation, overlong nesting or a malformed header.
    """
    if depth > MAX_DEPTH:
        raise DerError(f"values nested more than {MAX_DEPTH} deep")
    tag, content_start, length = read_header(buf, pos, limit)
    if length is not None:
        content_end = content_start + length
        if content_end > limit:
            raise DerError(
                f"the value at offset {pos} announces {length} bytes "
                f"but only {limit - content_start} follow"
            )
        return Tlv(tag, pos, content_start, content_end, content_end)
    # Indefinite length: children run until the end-of-contents octets.
    cursor = content_start
    while True:
        if cursor + 2 <= limit and buf[cursor : cursor + 2] == _END_OF_CONTENTS:
            return Tlv(tag, pos, content_start, cursor, cursor + 2)
        if cursor >= limit:
            raise DerError(f"the indefinite-length value at offset {pos} is not terminated")
        cursor = read_tlv(buf, cursor, limit, depth + 1).end


def children(buf: bytes, parent: Tlv, depth: int = 0) -> Iterator[Tlv]:
    """Yield the elements inside a constructed ``parent``, in order."""
    cursor = parent.content_start
    while cursor < parent.content_end:
        child = read_tlv(buf, cursor, parent.content_end, depth + 1)
        yield child
        cursor = child.end


def encode_oid(dotted: str) -> bytes:
    """The content octets of an OBJECT IDENTIFIER (X.690 §8.19), for comparisons."""
    arcs = [int(part) for part in dotted.split(".")]
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)
