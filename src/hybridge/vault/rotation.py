"""Rotating the master key: re-wrap the data key (``datakey`` rotates the data key itself).

Master key, key file (``rotate_master_key`` without a new source): four durable steps, so
that a crash at any point leaves every secret readable with the key then in the file:

1. write the new key to ``master.key.new`` (0600, fsync) — file: old; DB: old wrap;
2. store the data key wrapped under the new key as ``next`` beside the ``current`` wrap
   (one transaction) — file: old; DB: both, either key opens the vault;
3. rename ``master.key.new`` over ``master.key`` (atomic, directory fsynced) — file: new;
   DB: both;
4. drop the old wrap and mark the new one ``current`` (one transaction) — file: new; DB: new.

Running again after a crash cleans up: after step 1 or 2 the staged key never became the
key file, so its file and wrap are discarded and rotation starts over; after step 3 the
key file already holds the new key, so only step 4 is run. A server that is running keeps
its unwrapped data key in memory and never needs to restart (no downtime); a process that
starts at any moment finds a wrap for whatever key the file holds.

Master key held elsewhere (environment variable or command): Hybridge cannot write it, so
rotation has two phases: ``rotate_master_key(new_source=...)`` adds the ``next`` wrap
(both keys work), the operator points the configuration at the new key, and
``finish_rotation`` drops the old wrap once the configured key is the new one.
"""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from hybridge.storage.db import Database
from hybridge.vault import envelope, models
from hybridge.vault.errors import RotationError
from hybridge.vault.keyring import WrapRow, open_keyring, read_wraps, unwrap_data_keys
from hybridge.vault.keys import (
    KeyFileSource,
    MasterKey,
    MasterKeySource,
    fsync_directory,
    write_key_file,
)
from hybridge.vault.records import Clock, audit, utc_now

log = structlog.get_logger(__name__)

#: Test hook: the crash tests set this to a step name to SIGKILL the process right after it.
CRASH_ENV = "HYBRIDGE_VAULT_TEST_CRASH_AT"
STEPS = ("new-key-written", "new-wrap-stored", "key-file-switched", "old-wrap-dropped")


def _checkpoint(step: str) -> None:
    # The one place the crash hook is read. SIGKILL, not an exception: no finally blocks,
    # no atexit, no buffered writes flushed, exactly like a power cut or the OOM killer.
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did."""

    kind: Literal["master-key", "data-key"]
    phase: Literal["complete", "awaiting-switch", "recovered"]
    old_key_id: str
    new_key_id: str
    message: str


def staging_path(key_file: Path) -> Path:
    """Where a new key file is written before it replaces the old one."""
    return key_file.with_name(key_file.name + ".new")


@contextmanager
def _rotation_lock(key_file: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the key file for the whole file rotation.

    Two rotations at once would each stage a key and one would rename over the other's
    file after the other recorded its wrap. ``flock`` is released by the kernel when the
    process dies, so a SIGKILLed rotation never leaves a stale lock behind.
    """
    lock_path = key_file.with_name(key_file.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise RotationError(f"cannot create the lock file {lock_path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationError(
                f"another master-key rotation holds {lock_path}; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


def _state_of(master: MasterKey, wraps: Sequence[WrapRow]) -> str:
    return next(w.state for w in wraps if w.master_key_id == master.key_id)


def _store_next_wraps(
    session: Session,
    wraps: Sequence[WrapRow],
    current: MasterKey,
    new: MasterKey,
    new_location: str,
    now: datetime,
) -> None:
    data_keys = unwrap_data_keys(current, wraps)
    # Wraps of an earlier attempt that never became current are discarded first.
    session.execute(sa.delete(models.key_wraps).where(models.key_wraps.c.state == "next"))
    for data_key_id, data_key in data_keys.items():
        session.execute(
            sa.insert(models.key_wraps).values(
                data_key_id=data_key_id,
                master_key_id=new.key_id,
                state="next",
                algorithm=envelope.WRAP_ALGORITHM,
                wrapped_key=envelope.wrap(new.material, data_key),
                master_key_location=new_location,
                created_at=now,
            )
        )


def _finish(database: Database, new: MasterKey, actor: str, now: datetime) -> str:
    """Step 4: make ``new``'s wraps current and drop every other wrap; returns the old id."""
    with database.transaction() as session:
        wraps = read_wraps(session)
        unwrap_data_keys(new, wraps)  # the new wraps must open before the old ones go
        old_ids = sorted({w.master_key_id for w in wraps if w.master_key_id != new.key_id})
        session.execute(
            sa.delete(models.key_wraps).where(models.key_wraps.c.master_key_id != new.key_id)
        )
        session.execute(
            sa.update(models.key_wraps)
            .where(models.key_wraps.c.master_key_id == new.key_id)
            .values(state="current")
        )
        audit(session, now, actor, "vault.master_key.rotated", [new.key_id], old_ids, None)
    log.info("vault.master_key.rotated", new_key_id=new.key_id, old_key_ids=old_ids)
    return ", ".join(old_ids) or new.key_id


def rotate_master_key(
    database: Database,
    source: MasterKeySource,
    *,
    new_source: MasterKeySource | None = None,
    actor: str,
    clock: Clock = utc_now,
) -> RotationResult:
    """Re-wrap the data key under a new master key (see the module docstring).

    Without ``new_source`` the configured source must be a key file, and the whole rotation
    runs here. With it, the new key is added beside the old one and the operator finishes
    with :func:`finish_rotation` after switching the configuration.

    Raises:
        VaultNotInitializedError: nothing to rotate.
        MasterKeyError: the configured (or new) key is missing, malformed or not the vault's.
        RotationError: the rotation cannot run as asked (see the message).
    """
    wraps, current = open_keyring(database, source)
    now = clock()
    if new_source is not None:
        return _begin_external(database, wraps, current, new_source, actor, now)
    if not isinstance(source, KeyFileSource):
        raise RotationError(
            f"the master key comes from the {source.location}, which Hybridge cannot write; "
            f"put the new key where your key store keeps keys, then run rotate-key with "
            f"--new-key-env VARIABLE or --new-key-command COMMAND giving it"
        )
    with _rotation_lock(source.path):
        # Read again under the lock: another rotation may have finished meanwhile.
        wraps, current = open_keyring(database, source)
        return _rotate_key_file(database, source, wraps, current, actor, now)


def _rotate_key_file(
    database: Database,
    source: KeyFileSource,
    wraps: Sequence[WrapRow],
    current: MasterKey,
    actor: str,
    now: datetime,
) -> RotationResult:
    if _state_of(current, wraps) == "next":
        # A crash after step 3: the file already holds the new key. Only step 4 is left.
        old = _finish(database, current, actor, now)
        return RotationResult(
            "master-key",
            "recovered",
            old,
            current.key_id,
            f"finished an interrupted rotation: the vault is now under master key "
            f"{current.key_id} only",
        )
    staged = staging_path(source.path)
    # A staged key that was never renamed into place opens nothing: its wraps are
    # replaced below, so the file can go.
    staged.unlink(missing_ok=True)
    new_material = envelope.new_key()
    write_key_file(staged, new_material)
    new = MasterKey(new_material, envelope.key_id(new_material), source.location)
    _checkpoint("new-key-written")
    with database.transaction() as session:
        _store_next_wraps(session, wraps, current, new, source.location, now)
        audit(session, now, actor, "vault.master_key.rotation_begun", [new.key_id], [], None)
    _checkpoint("new-wrap-stored")
    # POSIX rename is atomic: a reader sees the old file or the new one, never a mix.
    os.replace(staged, source.path)
    fsync_directory(source.path.parent)
    _checkpoint("key-file-switched")
    _finish(database, new, actor, now)
    _checkpoint("old-wrap-dropped")
    return RotationResult(
        "master-key",
        "complete",
        current.key_id,
        new.key_id,
        f"the vault is now under master key {new.key_id} in {source.path}; back up this "
        f"file now, and keep the old key only as long as you keep database backups made "
        f"before this rotation",
    )


def _begin_external(
    database: Database,
    wraps: Sequence[WrapRow],
    current: MasterKey,
    new_source: MasterKeySource,
    actor: str,
    now: datetime,
) -> RotationResult:
    if _state_of(current, wraps) == "next":
        raise RotationError(
            f"the configured key {current.key_id} is already the new key of an unfinished "
            f"rotation; run rotate-key --finish"
        )
    new = new_source.load()
    if new.key_id == current.key_id:
        raise RotationError(
            f"the new key from {new_source.location} is the current key {current.key_id}; "
            f"give a different key"
        )
    with database.transaction() as session:
        _store_next_wraps(session, wraps, current, new, new_source.location, now)
        audit(session, now, actor, "vault.master_key.rotation_begun", [new.key_id], [], None)
    log.info("vault.master_key.rotation_begun", new_key_id=new.key_id)
    return RotationResult(
        "master-key",
        "awaiting-switch",
        current.key_id,
        new.key_id,
        f"both master keys {current.key_id} and {new.key_id} open the vault now; point the "
        f"connector's configuration at the new key, then run rotate-key --finish",
    )


def finish_rotation(
    database: Database, source: MasterKeySource, *, actor: str, clock: Clock = utc_now
) -> RotationResult:
    """Drop the old wrap once the configured master key is the new one.

    Raises:
        RotationError: no rotation is waiting, or the configured key is still the old one.
        MasterKeyError: the configured key is missing, malformed or not the vault's.
    """
    wraps, current = open_keyring(database, source)
    upcoming = sorted({w.master_key_id for w in wraps if w.state == "next"})
    if not upcoming:
        raise RotationError("no master-key rotation is waiting to be finished")
    if _state_of(current, wraps) != "next":
        raise RotationError(
            f"the configured master key ({source.location}) is still the old key "
            f"{current.key_id}; point it at the new key {', '.join(upcoming)} first"
        )
    old = _finish(database, current, actor, clock())
    return RotationResult(
        "master-key",
        "complete",
        old,
        current.key_id,
        f"the vault is now under master key {current.key_id} only",
    )


__all__ = [
    "CRASH_ENV",
    "STEPS",
    "RotationResult",
    "finish_rotation",
    "rotate_master_key",
    "staging_path",
]
