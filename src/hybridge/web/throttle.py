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
    waits = [
        (aware(row.locked_until) - now).total_seconds()
        for row in rows
        if row.locked_until is not None
    ]
    longest = max(waits, default=0.0)
    return max(0, math.ceil(longest))


def record_failure(
    session: Session, key: str, free: int, policy: ThrottlePolicy, now: dt.datetime
) -> None:
    """Count one failure for ``key`` and lock it when past its free failures."""
    row = session.execute(
        sa.select(web_login_failure).where(web_login_failure.c.key == key)
    ).first()
    failures = 1
    if row is not None:
        stale = (now - aware(row.last_failure_at)).total_seconds() > policy.forget_after
        failures = 1 if stale else row.failures + 1
    delay = policy.delay_after(failures, free)
    locked_until = now + dt.timedelta(seconds=delay) if delay else None
    values = {"failures": failures, "last_failure_at": now, "locked_until": locked_until}
    if row is None:
        session.execute(sa.insert(web_login_failure).values(key=key, **values))
    else:
        session.execute(
            sa.update(web_login_failure).where(web_login_failure.c.key == key).values(**values)
        )


def clear(session: Session, key: str) -> None:
    """Forget the failures of ``key`` (after a successful login to that account)."""
    session.execute(sa.delete(web_login_failure).where(web_login_failure.c.key == key))
