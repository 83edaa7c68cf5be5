"""Test an Exchange configuration the way the calendar connector will use it.

``test_connection`` reaches EWS over TLS with exchangelib (unmodified), authenticates with the
impersonation account, and impersonates the test mailbox by reading its calendar folder and
one item. Every way this can fail has its own result code and an admin-facing message that
says what to fix:

    ok | tls_untrusted | tls_name_mismatch | tls_error | dns | connection_refused | timeout
    | unauthorized | impersonation_denied | mailbox_not_found | server_busy
    | autodiscover_failed | ews_error

The password is a parameter (the caller takes it from the vault) and never appears in a
result, a log line or an exception: exchangelib's own messages are scrubbed before use and
its DEBUG header dumps are masked (see ``transport.install_log_redaction``).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from urllib.parse import urlsplit

from exchangelib import Credentials
from exchangelib.errors import RedirectError

from hybridge.calendar.ews.failures import classify
from hybridge.calendar.ews.result import CODES, ConnectionTestResult
from hybridge.calendar.ews.settings import EwsSettings
from hybridge.calendar.ews.transport import (
    account_for,
    autodiscover_protocol,
    install_log_redaction,
)

__all__ = ["CODES", "ConnectionTestResult", "test_connection"]

log = logging.getLogger(__name__)

_MAX_AUTODISCOVER_REDIRECTS = 3


def _autodiscover_urls(email: str) -> list[str]:
    domain = email.rsplit("@", 1)[1].lower()
    # MS-OXDSCLI §3.1.5: https://<domain>/autodiscover/... then https://autodiscover.<domain>/...
    return [
        f"https://{domain}/autodiscover/autodiscover.svc",
        f"https://autodiscover.{domain}/autodiscover/autodiscover.svc",
    ]


def _discover(
    settings: EwsSettings,
    credentials: Credentials,
    ssl_context: ssl.SSLContext,
    password: str,
    candidates: Sequence[str],
) -> str | ConnectionTestResult:
    """Return the EWS URL from SOAP Autodiscover, or the failure of the last candidate."""
    assert settings.autodiscover_email is not None
    last: ConnectionTestResult | None = None
    queue = list(candidates)
    redirects = 0
    while queue:
        url = queue.pop(0)
        protocol = autodiscover_protocol(
            url, credentials, settings.auth, ssl_context, settings.timeout_seconds
        )
        try:
            response = protocol.get_user_settings(
                user=settings.autodiscover_email,
                settings=["external_ews_url", "internal_ews_url", "auto_discover_smtp_address"],
            )
            response.raise_errors()
        except RedirectError as exc:
            host = (urlsplit(exc.url).hostname or "").lower()
            # Autodiscover redirects are a classic credential-theft vector: follow only
            # https redirects to hosts the admin listed.
            if (
                exc.url.startswith("https://")
                and host in settings.autodiscover_redirect_hosts
                and redirects < _MAX_AUTODISCOVER_REDIRECTS
            ):
                redirects += 1
                queue.insert(0, exc.url)
                continue
            last = ConnectionTestResult(
                "autodiscover_failed",
                f"Autodiscover at {url} redirected to {exc.url!r}, which is not an https URL "
                "on an allowed redirect host. Add the host to the allow-list if it is yours.",
                ews_url=None,
            )
            continue
        except Exception as exc:  # every failure is classified, none escapes
            last = classify(exc, settings, url, password)
            if last.code == "mailbox_not_found":
                return last
            continue
        finally:
            protocol.close()
        ews_url = response.ews_url or response.user_settings.get("internal_ews_url")
        if ews_url:
            return str(ews_url)
        last = ConnectionTestResult(
            "autodiscover_failed", f"Autodiscover at {url} returned no EWS URL."
        )
    if last is not None and last.code not in ("ews_error", "autodiscover_failed"):
        return last
    tried = ", ".join(candidates)
    detail = f" Last error: {last.message}" if last is not None else ""
    return ConnectionTestResult(
        "autodiscover_failed",
        f"Autodiscover found no EWS URL for {settings.autodiscover_email!r} (tried {tried})."
        f"{detail} Enter the EWS URL instead.",
    )


def test_connection(
    settings: EwsSettings,
    password: str,
    *,
    ssl_context: ssl.SSLContext,
    autodiscover_urls: Sequence[str] | None = None,
) -> ConnectionTestResult:
    """Run the connection test; always returns a result, never raises for a failure.

    ``ssl_context`` verifies Exchange's certificate (built from the platform trust store).
    ``autodiscover_urls`` overrides the candidate Autodiscover endpoints (default: derived
    from the email domain, MS-OXDSCLI order).
    """
    install_log_redaction()
    credentials = Credentials(settings.username, password)
    if settings.ews_url is not None:
        ews_url = settings.ews_url
    else:
        assert settings.autodiscover_email is not None
        found = _discover(
            settings,
            credentials,
            ssl_context,
            password,
            autodiscover_urls or _autodiscover_urls(settings.autodiscover_email),
        )
        if isinstance(found, ConnectionTestResult):
            return found
        ews_url = found
    account = account_for(
        ews_url,
        settings.test_mailbox,
        credentials,
        settings.auth,
        ssl_context,
        settings.timeout_seconds,
    )
    try:
        calendar = account.calendar  # GetFolder through ExchangeImpersonation
        items = list(calendar.all().only("subject")[:1])  # FindItem: we can read it
        version = account.version.fullname
    except Exception as exc:  # every failure is classified, none escapes
        result = classify(exc, settings, ews_url, password)
        log.info("EWS connection test of %s failed: %s", ews_url, result.code)
        return result
    finally:
        account.protocol.close()
    log.info("EWS connection test of %s succeeded", ews_url)
    return ConnectionTestResult(
        "ok",
        f"Connected to {ews_url} ({version}) as {settings.username!r} and read the calendar "
        f"of {settings.test_mailbox!r} through impersonation ({calendar.total_count} items"
        f"{', first readable' if items else ''}).",
        ews_url=ews_url,
        server_version=version,
    )


# Not a pytest test, despite the name (tests import it).
test_connection.__test__ = False  # type: ignore[attr-defined]
