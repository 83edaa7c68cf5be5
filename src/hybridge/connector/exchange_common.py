"""What the EWS and the Exchange Online (Graph) configurations share, written once.

Both kinds keep a write-only credential (the EWS impersonation password, the Graph client
secret) as a vault secret whose record is the configuration id, show it as "set on <date>
by <who>" and never as a value, validate the display name the same way, and record the
last connection test the same way. The two services (``exchange``, ``exchange_graph``) and
config modules (``exchange_config``, ``exchange_graph_config``) call these; what differs
between the kinds (endpoints, TLS, links, audit details) stays in those modules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

import sqlalchemy as sa

from hybridge.connector.exchange_errors import ExchangeConfigInvalid
from hybridge.storage.db import Database
from hybridge.vault import Secret, SecretMetadata, Vault
from hybridge.vault.records import audit

MAX_DISPLAY_NAME = 100
#: Entra ID client secrets are 40 characters, AD passwords at most 256; 1 KiB bounds both.
MAX_SECRET_BYTES = 1024


class StoredRecord(Protocol):
    """The bookkeeping fields both kinds of stored configuration carry."""

    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def created_by(self) -> str: ...
    @property
    def updated_at(self) -> dt.datetime: ...
    @property
    def updated_by(self) -> str: ...
    @property
    def last_test_code(self) -> str | None: ...
    @property
    def last_test_at(self) -> dt.datetime | None: ...


def check_display_name(value: object) -> str:
    """``value`` stripped, if 1 to 100 characters without control characters.

    Raises:
        ExchangeConfigInvalid: quoting ``value``.
    """
    name = value.strip() if isinstance(value, str) else ""
    if not name or len(name) > MAX_DISPLAY_NAME or any(ord(c) < 0x20 for c in name):
        raise ExchangeConfigInvalid(
            f"display name {value!r} is not accepted; expected 1 to "
            f"{MAX_DISPLAY_NAME} characters without control characters"
        )
    return name


def check_mapping(data: dict[str, Any], known: set[str], required: tuple[str, ...]) -> None:
    """Check the API's / CLI's JSON shape of a configuration before building it.

    Raises:
        ExchangeConfigInvalid: a field not in ``known`` (all of them quoted, with what is
            accepted), or a ``required`` one missing or not text.
    """
    unknown = sorted(set(data) - known)
    if unknown:
        raise ExchangeConfigInvalid(f"unknown fields {unknown!r}; accepted: {sorted(known)}")
    for key in required:
        if not isinstance(data.get(key), str):
            raise ExchangeConfigInvalid(f"{key} is required (text)")


def bookkeeping_of(row: Any) -> dict[str, Any]:
    """The bookkeeping columns of a stored row, as the record's keyword arguments."""
    return {
        "created_at": row.created_at,
        "created_by": row.created_by,
        "updated_at": row.updated_at,
        "updated_by": row.updated_by,
        "last_test_code": row.last_test_code,
        "last_test_at": row.last_test_at,
    }


def check_secret_text(secret: Secret, what: str) -> Secret:
    """``secret`` if it is 1 to 1024 bytes of UTF-8; ``what`` names it ("the password").

    Raises:
        ExchangeConfigInvalid: the length (never the value) or "not UTF-8 text".
    """
    if not 0 < len(secret) <= MAX_SECRET_BYTES:
        raise ExchangeConfigInvalid(
            f"{what} must be 1 to {MAX_SECRET_BYTES} bytes (got {len(secret)})"
        )
    try:
        secret.reveal_text()
    except ValueError as exc:
        raise ExchangeConfigInvalid(f"{what} is not UTF-8 text") from exc
    return secret


def secret_view(metadata: SecretMetadata | None) -> dict[str, Any]:
    """A write-only secret as pages, the API, the CLI and the export show it: whether it is
    set and "set on <date> by <who>" with its version; never the value."""
    view: dict[str, Any] = {"set": metadata is not None}
    if metadata is not None:
        view.update(
            set_at=metadata.set_at.isoformat(),
            set_by=metadata.set_by,
            version=metadata.version,
        )
    return view


def bookkeeping_view(record: StoredRecord) -> dict[str, Any]:
    """Who created and changed ``record`` and its last test, as JSON."""
    return {
        "created_at": record.created_at.isoformat(),
        "created_by": record.created_by,
        "updated_at": record.updated_at.isoformat(),
        "updated_by": record.updated_by,
        "last_test": None
        if record.last_test_at is None
        else {"code": record.last_test_code, "at": record.last_test_at.isoformat()},
    }


def stored_secret(vault: Vault, purpose: str, config_id: str) -> Secret | None:
    """The vault's secret ``purpose`` of ``config_id``, or None."""
    ref = vault.find(purpose, config_id)
    return None if ref is None else vault.get(ref)


def delete_secret(vault: Vault, purpose: str, config_id: str, *, actor: str) -> None:
    """Delete the vault's secret ``purpose`` of ``config_id`` if there is one."""
    ref = vault.find(purpose, config_id)
    if ref is not None:
        vault.delete(ref, actor=actor)


def name_owner(database: Database, table: sa.Table, name: str) -> str | None:
    """The id of the configuration in ``table`` displayed as ``name``, or None."""
    with database.transaction() as session:
        owner: str | None = session.scalar(
            sa.select(table.c.id).where(table.c.display_name == name)
        )
    return owner


def record_test(
    database: Database,
    table: sa.Table,
    config_id: str,
    code: str,
    *,
    now: dt.datetime,
    actor: str,
    action: str,
) -> None:
    """Store a test's ``code`` as the last test of ``config_id`` and audit it (``action``)."""
    with database.transaction() as session:
        session.execute(
            sa.update(table)
            .where(table.c.id == config_id)
            .values(last_test_code=code, last_test_at=now)
        )
        audit(session, now, actor, action, [], [], f"config={config_id} {code}")


__all__ = [
    "MAX_DISPLAY_NAME",
    "MAX_SECRET_BYTES",
    "StoredRecord",
    "bookkeeping_of",
    "bookkeeping_view",
    "check_display_name",
    "check_mapping",
    "check_secret_text",
    "delete_secret",
    "name_owner",
    "record_test",
    "secret_view",
    "stored_secret",
]
