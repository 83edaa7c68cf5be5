"""Map a failed EWS connection attempt to the result an Exchange admin can act on.

exchangelib, requests, urllib3 and ssl wrap each other's exceptions; ``_chain`` walks all of
them and the most specific cause decides: a certificate problem beats the transport error
that carried it, an EWS ResponseCode beats the HTTP status.
"""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from cryptography import x509
from exchangelib.errors import (
    ErrorImpersonateUserDenied,
    ErrorInternalServerTransientError,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    UnauthorizedError,
)

from hybridge.calendar.ews.result import ConnectionTestResult
from hybridge.calendar.ews.settings import EwsSettings

# X509_V_ERR_HOSTNAME_MISMATCH / X509_V_ERR_IP_ADDRESS_MISMATCH (OpenSSL x509_vfy.h).
_NAME_MISMATCH_CODES = frozenset({62, 64})


def _secret_forms(password: str) -> list[str]:
    forms = [password]
    for enc in ("utf-8", "utf-16-le"):
        forms.append(base64.b64encode(password.encode(enc)).decode())
    return [f for f in forms if f]


def scrub(text: str, password: str) -> str:
    for form in _secret_forms(password):
        text = text.replace(form, "********")
    return text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Walk an exception and everything it wraps (causes, contexts, urllib3 reasons, args)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [a for a in current.args if isinstance(a, BaseException)]
        todo.extend(e for e in linked if isinstance(e, BaseException))


def _peer_certificate(host: str, port: int, timeout: float) -> x509.Certificate | None:
    """Fetch the server's certificate *without* trusting it, only to describe a failure.

    Nothing is sent over this connection; its only use is naming the missing CA or the
    names the certificate does carry.
    """
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE  # description only; the real connection verifies
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            probe.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return x509.load_der_x509_certificate(der) if der else None


def _cert_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return [str(a.value) for a in cns]
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def _tls_result(
    err: ssl.SSLCertVerificationError, url: str, timeout: float
) -> ConnectionTestResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    cert = _peer_certificate(host, port, timeout)
    if err.verify_code in _NAME_MISMATCH_CODES:
        names = ", ".join(_cert_names(cert)) if cert is not None else "(could not read them)"
        return ConnectionTestResult(
            "tls_name_mismatch",
            f"The certificate of {host}:{port} is not valid for the name {host!r}: it names "
            f"{names}. Use an EWS URL with one of those names, or have the Exchange admin "
            f"install a certificate that includes {host!r}.",
            ews_url=url,
        )
    issuer = cert.issuer.rfc4514_string() if cert is not None else "(unknown issuer)"
    subject = cert.subject.rfc4514_string() if cert is not None else "(unknown subject)"
    reason = err.verify_message or "certificate verify failed"
    return ConnectionTestResult(
        "tls_untrusted",
        f"The certificate of {host}:{port} ({subject}) is not trusted: {reason}. "
        f"The platform trust store lacks the CA that issued it: {issuer!r}. Upload that CA "
        "certificate (and its root) to the trust store, then test again.",
        ews_url=url,
        fix=f"Add to the trust store: the CA certificate of {issuer}",
    )


def _impersonation_fix(username: str, mailbox: str) -> str:
    account = username.split("\\")[-1]
    return (
        "On an Exchange Management Shell, grant the role:\n"
        '  New-ManagementRoleAssignment -Name "Hybridge impersonation" '
        f'-Role ApplicationImpersonation -User "{account}"\n'
        "If the assignment uses a management scope (-CustomRecipientWriteScope), make sure "
        f"the scope includes {mailbox}:\n"
        "  Get-ManagementRoleAssignment -Role ApplicationImpersonation | "
        "Format-List Name,RoleAssigneeName,CustomRecipientWriteScope"
    )


def classify(
    exc: BaseException, settings: EwsSettings, url: str, password: str
) -> ConnectionTestResult:
    """Map any failure of exchangelib/requests/ssl to one result (first match wins)."""
    for err in _chain(exc):
        if isinstance(err, ssl.SSLCertVerificationError):
            return _tls_result(err, url, settings.timeout_seconds)
    for err in _chain(exc):
        if isinstance(err, ErrorImpersonateUserDenied):
            return ConnectionTestResult(
                "impersonation_denied",
                f"Exchange refused to let {settings.username!r} impersonate "
                f"{settings.test_mailbox!r} (ErrorImpersonateUserDenied): the account lacks "
                "the ApplicationImpersonation role, or the role's management scope excludes "
                "that mailbox.",
                ews_url=url,
                fix=_impersonation_fix(settings.username, settings.test_mailbox),
            )
        if isinstance(err, ErrorNonExistentMailbox):
            return ConnectionTestResult(
                "mailbox_not_found",
                f"Exchange has no mailbox {settings.test_mailbox!r} (ErrorNonExistentMailbox). "
                "Check the test mailbox address: it must be a primary SMTP address.",
                ews_url=url,
            )
        if isinstance(err, ErrorServerBusy | ErrorInternalServerTransientError):
            back_off = getattr(err, "back_off", None)
            wait = f" It asked to wait {back_off:g} s." if back_off else ""
            return ConnectionTestResult(
                "server_busy",
                f"Exchange is throttling requests (ErrorServerBusy).{wait} The settings may "
                "be right: test again later, or ask the Exchange admin about the EWS "
                "throttling policy of the impersonation account.",
                ews_url=url,
                retry_after_seconds=back_off,
            )
        if isinstance(err, UnauthorizedError):
            return ConnectionTestResult(
                "unauthorized",
                f"Exchange rejected the credentials of {settings.username!r} (HTTP 401). The "
                "password is wrong — or has expired: Exchange answers both the same way "
                f"over {settings.auth}. Ask the Exchange admin to check the account and "
                "enter the password again.",
                ews_url=url,
            )
    for err in _chain(exc):
        if isinstance(err, socket.gaierror) or type(err).__name__ == "NameResolutionError":
            return ConnectionTestResult(
                "dns",
                f"The name {urlsplit(url).hostname!r} does not resolve (DNS). Check the EWS "
                "URL or the connector's DNS servers.",
                ews_url=url,
            )
        if isinstance(err, ConnectionRefusedError):
            parts = urlsplit(url)
            return ConnectionTestResult(
                "connection_refused",
                f"{parts.hostname}:{parts.port or 443} refused the connection: nothing "
                "listens there, or a firewall rejects it. Check the EWS URL and port.",
                ews_url=url,
            )
        if isinstance(err, TimeoutError) or type(err).__name__ in (
            "ConnectTimeout",
            "ReadTimeout",
            "ConnectTimeoutError",
        ):
            return ConnectionTestResult(
                "timeout",
                f"No answer from {urlsplit(url).netloc} within {settings.timeout_seconds:g} s.",
                ews_url=url,
            )
    for err in _chain(exc):
        if isinstance(err, ssl.SSLError):
            return ConnectionTestResult(
                "tls_error",
                f"The TLS handshake with {urlsplit(url).netloc} failed: "
                f"{scrub(str(err), password)}",
                ews_url=url,
            )
    return ConnectionTestResult(
        "ews_error",
        f"EWS call failed: {type(exc).__name__}: {scrub(str(exc), password)[:500]}",
        ews_url=url,
    )
