"""Login throttling: failures counted per account and per client address.

OWASP ASVS 4.0 V2.2.1: anti-automation against credential stuffing and brute force. A key
(``account:<login>`` or ``ip:<address>``) is free for ``free_failures`` failures; each
failure beyond that locks it for ``base_delay * 2**(excess-1)`` seconds, capped at
``max_delay``. A locked key is refused before the password is even checked, so a locked
account cannot be probed. Success clears the account's counter, never the address's (one
good password must not reset a spray from that address across many accounts).

The lock is a "not before" time rather than a server-side sleep: sleeping would hold a worker
per attacker request.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hybridge.web.clock import aware
from hybridge.web.schema import web_login_failure


@dataclass(frozen=True)
class ThrottlePolicy:
    """Free failures per account and per address, then exponential lockout."""

    account_free_failures: int = 5
    address_free_failures: int = 20
    base_delay: float = 1.0
    max_delay: float = 900.0
    #: A key with no failure for this long starts again from zero.
    forget_after: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if self.account_free_failures < 1 or self.address_free_failures < 1:
            raise ValueError("free failures must be at least 1")
        if not 0 < self.base_delay <= self.max_delay:
            raise ValueError("need 0 < base_delay <= max_delay")

    def delay_after(self, failures: int, free: int) -> float:
        """Seconds of lockout after ``failures`` consecutive failures (0 while free)."""
        excess = failures - free
        if excess < 1:
            return 0.0
        return min(self.max_delay, self.base_delay * 2.0 ** min(excess - 1, 64))


def account_key(login: str) -> str:
    return f"account:{login}"


def address_key(address: str) -> str:
    return f"ip:{address}"


def locked_for(session: Session, keys: list[str], now: dt.datetime) -> int:
    """Seconds until every key in ``keys`` is unlocked (0: none is locked)."""
    rows = session.execute(
        sa.select(web_login_failure.c.locked_until).where(web_login_failure.c.key.in_(keys))
    ).all()
    return max((locked_for_row(row.locked_until, now) for row in rows), default=0)


def locked_for_row(locked_until: dt.datetime | None, now: dt.datetime) -> int:
    """Whole seconds from ``now`` until ``locked_until`` (0: not locked)."""
    if locked_until is None:
        return 0
    return max(0, math.ceil((aware(locked_until) - now).total_seconds()))


def _insert_ignoring_existing(session: Session, values: dict[str, object]) -> None:
    """INSERT the row unless its key exists (``ON CONFLICT DO NOTHING``) on either database."""
    dialect = session.get_bind().dialect.name
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(web_login_failure)
    elif dialect == "sqlite":
        statement = sqlite.insert(web_login_failure)
    else:
        raise NotImplementedError(f"login throttling has no upsert for {dialect!r}")
    session.execute(statement.values(**values).on_conflict_do_nothing())


def record_failure(
    session: Session, key: str, free: int, policy: ThrottlePolicy, now: dt.datetime
) -> None:
    """Count one failure for ``key`` and lock it when past its free failures.

    The count is one atomic ``UPDATE ... SET failures = failures + 1``: a read-then-write
    here let parallel guesses overwrite each other's counts (16 threads x 5 failures were
    once recorded as 14), so an attacker in parallel got far more tries than the policy
    allows (OWASP ASVS V2.2.1). The lock only ever moves later, for the same reason.
    """
    table = web_login_failure
    _insert_ignoring_existing(
        session, {"key": key, "failures": 0, "last_failure_at": now, "locked_until": None}
    )
    stale_before = now - dt.timedelta(seconds=policy.forget_after)
    failures = session.execute(
        sa.update(table)
        .where(table.c.key == key)
        .values(
            failures=sa.case(
                (table.c.last_failure_at < stale_before, 1), else_=table.c.failures + 1
            ),
            last_failure_at=now,
        )
        .returning(table.c.failures)
    ).scalar_one()
    delay = policy.delay_after(failures, free)
    if delay:
        locked_until = now + dt.timedelta(seconds=delay)
        session.execute(
            sa.update(table)
            .where(table.c.key == key)
            .where(sa.or_(table.c.locked_until.is_(None), table.c.locked_until < locked_until))
            .values(locked_until=locked_until)
        )


def clear(session: Session, key: str) -> None:
    """Forget the failures of ``key`` (after a successful login to that account)."""
    session.execute(sa.delete(web_login_failure).where(web_login_failure.c.key == key))
