"""SyncFolderItems states: opaque to clients, MACed so that none can be forged.

A state is ``base64(folder id | mailbox generation | log position | HMAC-SHA256[:16])``.
Bumping a mailbox's generation invalidates every state issued for it, which is how a test
makes Exchange answer ``ErrorInvalidSyncStateData``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class InvalidSyncState(ValueError):
    """A sync state that we did not issue, for another folder, or from an old generation."""


class SyncStateCodec:
    """Encodes and checks sync states under one secret key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def encode(self, folder_id: str, generation: int, seq: int) -> str:
        body = f"{folder_id}|{generation}|{seq}".encode()
        return base64.b64encode(body + b"|" + self._mac(body)).decode()

    def decode(self, state: str, folder_id: str, generation: int) -> int:
        """Return the log position; raises InvalidSyncState saying why it is refused."""
        try:
            raw = base64.b64decode(state, validate=True)
            # The MAC is binary and may contain b"|": cut it by length, not by separator.
            body, sep, mac = raw[:-17], raw[-17:-16], raw[-16:]
            if sep != b"|":
                raise ValueError("no separator")
            got_folder, got_generation, seq = body.decode().split("|")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidSyncState("sync state is not one this server issued") from exc
        if not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidSyncState("sync state is not one this server issued")
        if got_folder != folder_id:
            raise InvalidSyncState("sync state belongs to another folder")
        if int(got_generation) != generation:
            raise InvalidSyncState("sync state has expired")
        return int(seq)
