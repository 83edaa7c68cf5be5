"""Who may log on, who may impersonate whom, and who is being throttled.

Mutable at run time from tests (expire a password, revoke the role, start throttling), so it
is a small thread-safe object rather than the frozen :class:`EmulatorConfig` it starts from.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from hybridge.testing.ews.config import (
    DirectoryAccount,
    EmulatorConfig,
    ImpersonationAssignment,
    ThrottlePolicy,
)
from hybridge.testing.ews.errors import StoreLookupError


@dataclass(frozen=True)
class ThrottleDecision:
    """``busy`` with the back-off to advertise, or not busy."""

    busy: bool
    back_off_ms: int = 0
    style: str = "fault"


class Directory:
    """Accounts, ApplicationImpersonation assignments and throttling counters."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.netbios_domain = config.netbios_domain
        self.dns_domain = config.dns_domain
        self._lock = threading.Lock()
        self._accounts: dict[str, DirectoryAccount] = {a.smtp: a for a in config.accounts}
        self._assignments: list[ImpersonationAssignment] = list(config.impersonation)
        self._throttles: dict[str, ThrottlePolicy] = dict(config.throttling)
        self._request_counts: dict[str, int] = {}
        self._busy_given: dict[str, int] = {}

    # -- accounts ---------------------------------------------------------------------------

    def add_account(self, account: DirectoryAccount) -> None:
        """Add or replace an account (keyed by SMTP address)."""
        with self._lock:
            self._accounts[account.smtp] = account

    def update_account(self, smtp: str, **changes: object) -> DirectoryAccount:
        """Change fields of an account (password, password_expired, ...); returns the new one."""
        with self._lock:
            current = self._accounts.get(smtp.lower())
            if current is None:
                raise StoreLookupError(f"no account {smtp!r}; known: {sorted(self._accounts)}")
            updated = replace(current, **changes)  # type: ignore[arg-type]
            self._accounts[updated.smtp] = updated
            return updated

    def find_logon(self, domain: str, user: str) -> DirectoryAccount | None:
        """Resolve a logon name as a client sends it: ``DOMAIN\\user`` parts, or a UPN.

        The domain must be our NetBIOS or DNS domain (or empty, with a UPN as the user).
        """
        user_l = user.lower()
        domain_l = domain.lower()
        with self._lock:
            for acct in self._accounts.values():
                if "@" in user_l:
                    if domain_l == "" and user_l == acct.smtp:
                        return acct
                elif user_l == acct.username.lower() and domain_l in (
                    "",
                    self.netbios_domain.lower(),
                    self.dns_domain.lower(),
                ):
                    return acct
        return None

    def mailbox_account(self, smtp: str) -> DirectoryAccount | None:
        """The account owning mailbox ``smtp``, or None when no such mailbox exists."""
        with self._lock:
            acct = self._accounts.get(smtp.lower())
        return acct if acct is not None and acct.has_mailbox else None

    # -- impersonation ----------------------------------------------------------------------

    def grant_impersonation(
        self, username: str, scope: frozenset[str] | None = None, name: str = "Impersonation"
    ) -> None:
        """``New-ManagementRoleAssignment -Role ApplicationImpersonation -User username``."""
        scoped = None if scope is None else frozenset(s.lower() for s in scope)
        with self._lock:
            self._assignments.append(ImpersonationAssignment(name, username, scoped))

    def revoke_impersonation(self, username: str) -> None:
        """Remove every ApplicationImpersonation assignment of ``username``."""
        with self._lock:
            self._assignments = [
                a for a in self._assignments if a.username.lower() != username.lower()
            ]

    def may_impersonate(self, caller: DirectoryAccount, target_smtp: str) -> bool:
        """True when an assignment gives ``caller`` the role over ``target_smtp``."""
        target = target_smtp.lower()
        with self._lock:
            for assignment in self._assignments:
                if assignment.username.lower() != caller.username.lower():
                    continue
                # The management scope limits the recipients the role applies to.
                if assignment.scope is None or target in assignment.scope:
                    return True
        return False

    # -- throttling -------------------------------------------------------------------------

    def set_throttle(self, smtp: str, policy: ThrottlePolicy | None) -> None:
        """Start (or with None stop) throttling requests against mailbox ``smtp`` ("*" = all)."""
        key = smtp if smtp == "*" else smtp.lower()
        with self._lock:
            if policy is None:
                self._throttles.pop(key, None)
            else:
                self._throttles[key] = policy
            self._request_counts.pop(key, None)
            self._busy_given.pop(key, None)

    def count_request(self, smtp: str) -> ThrottleDecision:
        """Count one request against ``smtp`` and say whether to answer ErrorServerBusy."""
        key = smtp.lower()
        with self._lock:
            policy = self._throttles.get(key)
            if policy is None:
                policy = self._throttles.get("*")
            if policy is None:
                return ThrottleDecision(False)
            count = self._request_counts.get(key, 0) + 1
            self._request_counts[key] = count
            if count <= policy.after_requests:
                return ThrottleDecision(False)
            given = self._busy_given.get(key, 0)
            if policy.busy_responses and given >= policy.busy_responses:
                return ThrottleDecision(False)
            self._busy_given[key] = given + 1
            return ThrottleDecision(True, policy.back_off_ms, policy.style)
