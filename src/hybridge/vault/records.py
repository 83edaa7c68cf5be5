"""The values a vault deals in, their validation, and the audit records it appends.

``SecretRef`` is what a record (an Exchange configuration, the registration) stores to find
its secret; ``SecretMetadata`` is everything about a secret that a page may show.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hybridge.vault import models
from hybridge.vault.errors import InvalidSecretInputError

Clock = Callable[[], datetime]

_PURPOSE = re.compile(r"[a-z][a-z0-9._-]{0,63}\Z")
_SECRET_ID = re.compile(r"[0-9a-f]{32}\Z")
_MAX_TEXT = 200
NOT_INITIALIZED = (
    "the vault has no data key yet; run `hybridge connector vault init` (or store a first "
    "secret through the connector) to create it"
)


def utc_now() -> datetime:
    """The default clock of the vault: now, in UTC."""
    return datetime.now(UTC)


def check_text(kind: str, value: object) -> str:
    """``value`` if it is 1 to 200 characters without control characters.

    Raises:
        InvalidSecretInputError: otherwise (quoting the value: record ids and actors are
            names, never secrets).
    """
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise InvalidSecretInputError(
            f"{kind} {value!r} is not accepted; expected 1 to {_MAX_TEXT} characters of text"
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidSecretInputError(f"{kind} {value!r} contains control characters")
    return value


def check_purpose(purpose: object) -> str:
    """``purpose`` if it is a lowercase dotted name. Raises ``InvalidSecretInputError``."""
    if not isinstance(purpose, str) or not _PURPOSE.match(purpose):
        raise InvalidSecretInputError(
            f"purpose {purpose!r} is not accepted; expected a lowercase name like "
            f"'exchange.impersonation' (letters, digits, '.', '_', '-', at most 64)"
        )
    return purpose


@dataclass(frozen=True)
class SecretRef:
    """What a record stores to find its secret: the secret's id and its purpose."""

    secret_id: str
    purpose: str

    def __post_init__(self) -> None:
        if not isinstance(self.secret_id, str) or not _SECRET_ID.match(self.secret_id):
            raise InvalidSecretInputError(
                f"secret id {self.secret_id!r} is not accepted; expected 32 lowercase hex digits"
            )
        check_purpose(self.purpose)


@dataclass(frozen=True)
class SecretMetadata:
    """Everything about a secret except its value: what pages and APIs may show."""

    ref: SecretRef
    record_id: str
    version: int
    set_at: datetime
    set_by: str
    data_key_id: int


def metadata_of(row: sa.Row[Any]) -> SecretMetadata:
    return SecretMetadata(
        ref=SecretRef(row.id, row.purpose),
        record_id=row.record_id,
        version=row.version,
        set_at=row.set_at,
        set_by=row.set_by,
        data_key_id=row.data_key_id,
    )


def audit(
    session: Session,
    at: datetime,
    actor: str,
    action: str,
    added: list[str],
    removed: list[str],
    detail: str | None,
) -> None:
    """Append a record to the node's audit log (ids and key ids only, never a value)."""
    session.execute(
        sa.insert(models.audit_log).values(
            at=at, actor=actor, action=action, added=added, removed=removed, detail=detail
        )
    )
