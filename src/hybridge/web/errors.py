"""Errors of the shared web layer.

WebError                 (HybridgeError)
 ├── LoginFailed         wrong login or password (never says which)
 ├── LoginThrottled      too many failures for this account or client address
 ├── LoginRequired       a page needs a logged-in admin (carries where to come back to)
 ├── CsrfRejected        an unsafe request without the session's CSRF token
 └── WeakPassword        a new password outside the policy
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class WebError(HybridgeError):
    """Something the admin web layer refused."""


class LoginFailed(WebError):
    """Unknown login or wrong password; the message never says which (no account probing)."""


class LoginThrottled(WebError):
    """Too many failed logins; ``retry_after`` seconds until the next attempt is heard."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LoginRequired(WebError):
    """The page needs a logged-in admin; ``next_url`` is the local path to return to."""

    def __init__(self, next_url: str) -> None:
        super().__init__("log in to continue")
        self.next_url = next_url


class CsrfRejected(WebError):
    """An unsafe request did not carry the CSRF token bound to the session."""


class WeakPassword(WebError):
    """A new password that does not meet the policy."""
