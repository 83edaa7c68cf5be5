"""Authenticated Graph requests: msal app-only tokens, one httpx client, errors translated.

- **One TLS configuration.** msal and Graph calls share one ``httpx.Client`` built on the
  connector's trust-store ``SSLContext`` (msal takes any ``http_client`` with requests'
  ``get``/``post`` shape, which httpx has). Nothing falls back to certifi or the bootstrap
  anchors: those are for the cloud's registration endpoint only (DESIGN §3.1).
- **Where secrets go.** The credential is sent only to the token endpoint the tenant's
  discovery document names, and only when that endpoint is on the configured authority
  host; the bearer token only to URLs under the configured Graph origin (nextLinks and
  deltaLinks included).
- **Tokens.** ``acquire_token_for_client`` serves msal's cached token until it is within
  five minutes of expiry, then asks the identity platform again. A Graph 401 (the token was
  revoked or expired early) drops msal's cached tokens and retries the request once with a
  fresh token; a second 401 means the credential itself is refused.
- **Errors** are translated here, at the boundary, into ``calendar.errors`` classes naming
  the mailbox: 401 -> CredentialsRejectedError (pauses the configuration), 403
  ``ErrorAccessDenied`` -> ImpersonationDeniedError (this mailbox is outside the app's RBAC
  for Applications scope), 404 user -> MailboxNotFoundError, 404 item -> MeetingNotFoundError,
  410 / ``syncStateNotFound`` -> InvalidSyncStateError, 429/503 -> MailboxThrottledError
  with the server's ``Retry-After``. No response body, token or secret is put in a message
  beyond Graph's own error code and text.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal

from hybridge.calendar.errors import (
    BackendError,
    CredentialsRejectedError,
    ImpersonationDeniedError,
    InvalidSyncStateError,
    MailboxNotFoundError,
    MailboxThrottledError,
    MeetingNotFoundError,
)
from hybridge.calendar.graph.settings import GraphSettings

log = logging.getLogger(__name__)

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
_DEFAULT_RETRY_AFTER = 30.0
_INVALID_SYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
_USER_NOT_FOUND_CODES = frozenset(
    {
        "errorinvaliduser",
        "mailboxnotenabledforrestapi",
        "resourcenotfound",
        "errornonexistentmailbox",
    }
)


def retry_after_seconds(value: str | None) -> float:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3: seconds or a date)."""
    if not value:
        return _DEFAULT_RETRY_AFTER
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return _DEFAULT_RETRY_AFTER
    return max(0.0, when.timestamp() - time.time())


def _graph_error(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return "", ""
    if not isinstance(error, dict):
        return str(error), ""
    return str(error.get("code") or ""), str(error.get("message") or "")[:300]


class GraphTlsError(BackendError):
    """The identity platform's or Graph's certificate is not trusted by our trust store."""


def _transport_error(exc: httpx.HTTPError, what: str, mailbox: str) -> BackendError:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return GraphTlsError(
            f"TLS: the certificate of {what} is not trusted ({cause.verify_message}); add its "
            "CA to the connector's trust store",
            mailbox=mailbox,
        )
    return BackendError(f"cannot reach {what}: {type(exc).__name__}: {exc}", mailbox=mailbox)


class MsalHttp:
    """The ``http_client`` msal is given: our httpx client in requests' shape.

    httpx already has ``get``/``post`` with requests' keywords; one difference matters:
    msal passes the signed client assertion as ``bytes`` in the form, which requests
    encodes as its value but httpx renders as ``"b'...'"``. Form values are decoded here.
    """

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._http.get(url, **kwargs)

    def post(self, url: str, data: Any = None, **kwargs: Any) -> httpx.Response:
        if isinstance(data, dict):
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return self._http.post(url, data=data, **kwargs)

    def close(self) -> None:
        """The httpx client is ours to close (GraphClient.close)."""


class GraphClient:
    """Graph v1.0 requests as the application, with the translated errors above."""

    def __init__(self, settings: GraphSettings, *, ssl_context: ssl.SSLContext) -> None:
        self.settings = settings
        self._http = httpx.Client(
            verify=ssl_context,
            timeout=settings.timeout_seconds,
            headers={"Accept": "application/json"},
        )
        self._app: msal.ConfidentialClientApplication | None = None
        self._app_lock = threading.Lock()
        self._graph_origin = urlsplit(settings.graph_url)[:2]

    # -- tokens -----------------------------------------------------------------------------

    def _credential(self) -> Any:
        s = self.settings
        if s.client_secret is not None:
            return s.client_secret.reveal_text()
        assert s.certificate is not None  # settings validation: exactly one is set
        return {
            "private_key": s.certificate.private_key_pem.reveal_text(),
            # With the public certificate msal signs PS256 with an x5t#S256 header.
            "public_certificate": s.certificate.certificate_pem.decode(),
        }

    def _msal(self) -> msal.ConfidentialClientApplication:
        with self._app_lock:
            if self._app is None:
                try:
                    # Building the app fetches the tenant's OpenID discovery document.
                    self._app = msal.ConfidentialClientApplication(
                        self.settings.client_id,
                        client_credential=self._credential(),
                        authority=self.settings.authority,
                        # Never ask login.microsoftonline.com to vouch for the authority
                        # host: the configured authority is the one we trust.
                        instance_discovery=False,
                        http_client=MsalHttp(self._http),
                        timeout=self.settings.timeout_seconds,
                    )
                except httpx.HTTPError as exc:
                    raise _transport_error(exc, self.settings.authority_host, "") from exc
                except ValueError as exc:
                    raise BackendError(
                        f"the identity platform at {self.settings.authority!r} could not be "
                        f"used: {str(exc)[:300]}"
                    ) from exc
                endpoint = str(self._app.authority.token_endpoint)
                if urlsplit(endpoint)[:2] != urlsplit(self.settings.authority_host)[:2]:
                    # The client secret (or assertion) goes to the token endpoint the
                    # discovery document names: only on the configured authority host.
                    self._app = None
                    raise BackendError(
                        f"the discovery document of {self.settings.authority!r} names the token "
                        f"endpoint {endpoint[:200]!r}, outside {self.settings.authority_host!r};"
                        " refusing to send the application's credential there"
                    )
            return self._app

    def token(self, mailbox: str = "") -> str:
        """A valid app-only access token (msal's cache first). Raises BackendError kinds."""
        app = self._msal()
        try:
            result = app.acquire_token_for_client(scopes=GRAPH_SCOPES)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.settings.authority_host, mailbox) from exc
        except ValueError as exc:
            # msal's refusals of its input (a malformed token response, a key it cannot
            # sign with); its message names the problem, never the credential.
            raise BackendError(
                f"no token for application {self.settings.client_id!r}: {str(exc)[:300]}",
                mailbox=mailbox,
            ) from exc
        if "access_token" in result:
            return str(result["access_token"])
        error = str(result.get("error") or "")
        codes = result.get("error_codes") or []
        description = str(result.get("error_description") or "").split("\r\n")[0][:300]
        code = f"AADSTS{codes[0] if codes else '?'}"
        if error == "unauthorized_client":
            raise CredentialsRejectedError(
                f"the Microsoft identity platform does not know application "
                f"{self.settings.client_id!r} in tenant {self.settings.tenant_id!r} "
                f"({error}, {code}): check the client id and tenant id",
                mailbox=mailbox,
            )
        if error == "invalid_client":
            raise CredentialsRejectedError(
                f"the Microsoft identity platform refused application {self.settings.client_id!r}"
                f" ({error}, {code}): client secret or certificate"
                " password rejected (often expired); set a new credential for the app "
                "registration",
                mailbox=mailbox,
            )
        raise BackendError(
            f"no token for application {self.settings.client_id!r}: {error}: {description}",
            mailbox=mailbox,
        )

    def forget_tokens(self) -> None:
        """Drop msal's cached tokens: the next request gets a fresh one."""
        if self._app is not None:
            self._app.remove_tokens_for_client()

    # -- requests ---------------------------------------------------------------------------

    def on_graph(self, url: str) -> bool:
        """True when ``url`` is under the configured Graph origin (scheme and host:port)."""
        return urlsplit(url)[:2] == self._graph_origin

    def check_url(self, url: str) -> str:
        """``url`` when it is on our Graph host; raises BackendError otherwise.

        A nextLink/deltaLink comes from the server (and from our persisted state): it
        receives our bearer token, so it must point at the configured Graph origin.
        """
        if not self.on_graph(url):
            raise BackendError(
                f"refusing to send the Graph token to {url[:200]!r}: not under "
                f"{self.settings.graph_url!r}"
            )
        return url

    def request(
        self,
        method: str,
        url: str,
        *,
        mailbox: str,
        what: str,
        headers: dict[str, str] | None = None,
        json: Any = None,
        ok_statuses: tuple[int, ...] = (200,),
        role: str = "Application Calendars.ReadWrite",
    ) -> httpx.Response:
        """Send a Graph request as the application; translated errors for ``mailbox``.

        ``what`` says what was asked ("event 'AAMk...'"), for messages; ``role`` is the
        RBAC for Applications role the request needs (named in a 403's fix). Statuses in
        ``ok_statuses`` (and 412, which callers handle) are returned; others raise.
        """
        self.check_url(url)
        for attempt in (1, 2):
            send = {"Authorization": f"Bearer {self.token(mailbox)}", **(headers or {})}
            try:
                response = self._http.request(method, url, headers=send, json=json)
            except httpx.HTTPError as exc:
                raise _transport_error(exc, self.settings.graph_url, mailbox) from exc
            if response.status_code == 401 and attempt == 1:
                # Expired or revoked before msal thought so: one retry with a new token.
                self.forget_tokens()
                continue
            if response.status_code in ok_statuses or response.status_code == 412:
                return response
            raise self._translate(response, mailbox, what, role)
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(
        self, response: httpx.Response, mailbox: str, what: str, role: str
    ) -> BackendError:
        status = response.status_code
        code, message = _graph_error(response)
        detail = f"{status} {code}: {message}" if code else str(status)
        if status == 401:
            # Only after a retry with a token fresh from the identity platform: the
            # credential was accepted there, so it is the app Graph refuses.
            return CredentialsRejectedError(
                f"Graph refused a fresh token of application {self.settings.client_id!r} "
                f"({detail}): the app registration or its service principal was disabled or "
                "removed; check it in Entra ID and Exchange Online (Get-ServicePrincipal)",
                mailbox=mailbox,
            )
        if status == 403:
            return ImpersonationDeniedError(
                f"Graph denied application {self.settings.client_id!r} access to {mailbox!r} "
                f"({detail}). Exchange Online grants it through RBAC for Applications: "
                "New-ManagementRoleAssignment -App <service principal> -Role "
                f"'{role}' -CustomResourceScope <a management scope "
                f"that includes {mailbox}> (check with Test-ServicePrincipalAuthorization "
                f"-Resource {mailbox})",
                mailbox=mailbox,
            )
        if status == 410 or code.lower() in _INVALID_SYNC_CODES:
            return InvalidSyncStateError(
                f"Graph no longer accepts the delta (sync) token of {mailbox!r} ({detail}); "
                "resyncing",
                mailbox=mailbox,
            )
        if status == 404 and code.lower() in _USER_NOT_FOUND_CODES:
            return MailboxNotFoundError(
                f"Graph has no mailbox {mailbox!r} ({detail})", mailbox=mailbox
            )
        if status == 404:
            return MeetingNotFoundError(
                f"{what} is gone from {mailbox!r} ({detail})", mailbox=mailbox
            )
        if status in (429, 503, 504):
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            return MailboxThrottledError(
                f"Graph is throttling requests for {mailbox!r} ({detail}); wait {wait:.0f} s",
                mailbox=mailbox,
                retry_after_seconds=wait,
            )
        return BackendError(f"Graph answered {detail} for {what} of {mailbox!r}", mailbox=mailbox)

    @staticmethod
    def json_of(response: httpx.Response, mailbox: str, what: str) -> Any:
        """The JSON object of a Graph answer; raises BackendError when it is not one."""
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BackendError(
                f"Graph answered {what} of {mailbox!r} with something that is not a JSON "
                f"object ({response.headers.get('Content-Type', 'no content type')})",
                mailbox=mailbox,
            )
        return data

    def close(self) -> None:
        self._http.close()
