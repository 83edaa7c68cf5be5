"""The EWS emulator's HTTPS server: authentication, the SOAP front door and streaming.

Built on the standard library's ``ThreadingHTTPServer`` rather than an ASGI app because
NTLM authenticates a *TCP connection*, not a request: after the three-message handshake IIS
serves later requests on that connection without an ``Authorization`` header, and
exchangelib (through requests_ntlm) relies on it. A thread-per-connection handler holds that
state naturally in ``self``; an ASGI app sees requests, not connections. The same model gives
GetStreamingEvents a long-lived chunked response without an event loop, and lets tests run
the emulator either in-process (a thread) or as ``python -m hybridge.testing.ews``.

Request pipeline, in Exchange's order: TLS -> HTTP authentication (401 with
``WWW-Authenticate: NTLM`` / ``Basic``) -> SOAP parse -> ``RequestServerVersion`` ->
``ExchangeImpersonation`` (mailbox exists? caller holds ApplicationImpersonation over it?)
-> throttling -> the operation.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hybridge.testing.ews.autodiscover import get_user_settings, pox_response
from hybridge.testing.ews.availability import get_user_oof_settings
from hybridge.testing.ews.config import DirectoryAccount
from hybridge.testing.ews.items import ITEM_OPERATIONS, RequestContext
from hybridge.testing.ews.ntlm import NtlmAcceptor, NtlmProtocolError, NtlmVerdict
from hybridge.testing.ews.soap import (
    KNOWN_VERSIONS,
    MAX_REQUEST_BYTES,
    SoapRequest,
    SoapRequestError,
    T,
    envelope,
    fault,
    parse_request,
)
from hybridge.testing.ews.sync import (
    streaming_check,
    streaming_documents,
    subscribe,
    sync_folder_items,
    unsubscribe,
)

if TYPE_CHECKING:
    from hybridge.testing.ews.emulator import EwsEmulator

log = logging.getLogger("hybridge.testing.ews")

EWS_PATH = "/ews/exchange.asmx"
AUTODISCOVER_SVC = "/autodiscover/autodiscover.svc"
AUTODISCOVER_XML = "/autodiscover/autodiscover.xml"

#: Seconds an idle keep-alive connection is kept (IIS's connectionTimeout is 120 s).
IDLE_TIMEOUT = 30.0

_UNAUTHORIZED_BODY = (
    b"<html><head><title>401 - Unauthorized</title></head><body>"
    b"401 - Unauthorized: Access is denied due to invalid credentials.</body></html>"
)

_ACCOUNT_OPERATIONS = {
    **ITEM_OPERATIONS,
    "SyncFolderItems": sync_folder_items,
    "GetUserOofSettingsRequest": get_user_oof_settings,
    "Subscribe": subscribe,
    "Unsubscribe": unsubscribe,
}
#: Operations that do not act on a mailbox: no impersonation or throttling check.
_PROTOCOL_OPERATIONS = {"ConvertId", "ResolveNames"}


class EwsRequestHandler(BaseHTTPRequestHandler):
    """One TCP connection; NTLM identity lives here for the connection's life."""

    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: EwsHttpServer

    def setup(self) -> None:
        super().setup()
        self._ntlm: NtlmAcceptor | None = None
        self._ntlm_account: DirectoryAccount | None = None

    def log_message(self, format: str, *args: Any) -> None:
        # The request line and status only; headers (Authorization) are never logged.
        log.debug("%s %s", self.address_string(), format % args)

    # -- HTTP plumbing ----------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/xml; charset=utf-8",
        **headers: str,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _challenge_401(self, ntlm_token: bytes | None = None, scheme: str = "NTLM") -> None:
        methods = self.server.emulator.auth_methods
        self.send_response(401)
        if ntlm_token is not None:
            # Answer in the scheme the client used: raw NTLM tokens may come as "Negotiate".
            token = base64.b64encode(ntlm_token).decode()
            self.send_header("WWW-Authenticate", f"{scheme} {token}")
        else:
            if "NTLM" in methods:
                self.send_header("WWW-Authenticate", "NTLM")
            if "Basic" in methods:
                realm = self.server.emulator.directory.dns_domain
                self.send_header("WWW-Authenticate", f'Basic realm="{realm}"')
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(_UNAUTHORIZED_BODY)))
        self.end_headers()
        self.wfile.write(_UNAUTHORIZED_BODY)

    def _read_body(self) -> bytes | None:
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.isdigit():
            self._send(411, b"", "text/plain")
            return None
        length = int(raw_length)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            self._send(413, b"", "text/plain")
            return None
        return self.rfile.read(length)

    # -- authentication ---------------------------------------------------------------------

    def _authenticate(self) -> DirectoryAccount | None:
        """Return the caller, or answer 401 (and return None)."""
        emulator = self.server.emulator
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if not header:
            if self._ntlm_account is not None:
                return self._ntlm_account  # NTLM authenticated this connection earlier
            self._challenge_401()
            return None
        if scheme == "basic" and "Basic" in emulator.auth_methods:
            return self._basic(value.strip())
        if scheme in ("ntlm", "negotiate") and "NTLM" in emulator.auth_methods:
            return self._ntlm_step(value.strip(), "Negotiate" if scheme == "negotiate" else "NTLM")
        self._challenge_401()
        return None

    def _basic(self, value: str) -> DirectoryAccount | None:
        directory = self.server.emulator.directory
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            self._challenge_401()
            return None
        name, _, password = decoded.partition(":")
        domain, _, user = name.rpartition("\\")
        acct = directory.find_logon(domain, user)
        ok = acct is not None and hmac.compare_digest(
            acct.password.encode("utf-8"), password.encode("utf-8")
        )
        if acct is None or not ok:
            log.info("Basic logon refused for %r: unknown user or wrong password", name)
            self._challenge_401()
            return None
        # IIS answers an expired password with the same 401 as a wrong one (sub-status
        # 401.1); Exchange never tells an EWS client the password has merely expired.
        if acct.password_expired:
            log.info("Basic logon refused for %r: password expired", name)
            self._challenge_401()
            return None
        return acct

    def _ntlm_step(self, value: str, scheme: str) -> DirectoryAccount | None:
        emulator = self.server.emulator
        try:
            token = base64.b64decode(value, validate=True)
        except binascii.Error:
            self._challenge_401()
            return None
        if token[8:12] == b"\x01\x00\x00\x00" or self._ntlm is None:
            self._ntlm = emulator.new_ntlm_acceptor()
            self._ntlm_account = None
        try:
            result = self._ntlm.step(token)
        except NtlmProtocolError as exc:
            log.info("NTLM protocol error: %s", exc)
            self._ntlm = None
            self._challenge_401()
            return None
        if not isinstance(result, NtlmVerdict):
            self._challenge_401(result, scheme)
            return None
        self._ntlm = None
        if result.identity is None:
            log.info("NTLM logon refused: %s", result.reason)
            self._challenge_401()
            return None
        acct = emulator.directory.find_logon(result.identity.domain, result.identity.user)
        self._ntlm_account = acct
        return acct

    # -- verbs ------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        path = urlsplit(self.path).path.lower()
        if path in (AUTODISCOVER_SVC, AUTODISCOVER_XML, EWS_PATH):
            self._challenge_401()
        else:
            self._send(404, b"", "text/plain")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.lower()
        if path in (AUTODISCOVER_SVC, AUTODISCOVER_XML, EWS_PATH):
            if self._authenticate() is not None:
                self._send(405, b"", "text/plain")
        else:
            self._send(404, b"", "text/plain")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.lower()
        if path not in (EWS_PATH, AUTODISCOVER_SVC, AUTODISCOVER_XML):
            self._read_body()
            self._send(404, b"", "text/plain")
            return
        body = self._read_body()
        if body is None:
            return
        caller = self._authenticate()
        if caller is None:
            return
        emulator = self.server.emulator
        if path == AUTODISCOVER_XML:
            try:
                root = ET.fromstring(body)  # noqa: S314 - see soap.parse_request
            except ET.ParseError:
                self._send(400, b"", "text/plain")
                return
            self._send(200, pox_response(emulator.directory, root, emulator.ews_url))
            return
        try:
            request = parse_request(body)
        except SoapRequestError as exc:
            self._send(500, fault("ErrorSchemaValidation", str(exc)))
            return
        if path == AUTODISCOVER_SVC:
            if request.name != "GetUserSettingsRequestMessage":
                self._send(500, fault("ErrorInvalidRequest", f"unsupported {request.name!r}"))
                return
            self._send(
                200, get_user_settings(emulator.directory, request.operation, emulator.ews_url)
            )
            return
        self._ews(caller, request)

    def _ews(self, caller: DirectoryAccount, request: SoapRequest) -> None:
        emulator = self.server.emulator
        version_elem = request.header_child(T, "RequestServerVersion")
        version = version_elem.get("Version") if version_elem is not None else "Exchange2007_SP1"
        if version not in KNOWN_VERSIONS:
            self._send(
                500, fault("ErrorInvalidServerVersion", "The specified server version is invalid.")
            )
            return
        mailbox = caller.smtp if caller.has_mailbox else ""
        impersonation = request.header_child(T, "ExchangeImpersonation")
        if impersonation is not None and request.name not in _PROTOCOL_OPERATIONS:
            target = ""
            for name in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName"):
                found = impersonation.findtext(f"{{{T}}}ConnectingSID/{{{T}}}{name}")
                if found:
                    target = found.strip().lower()
                    break
            if emulator.directory.mailbox_account(target) is None:
                self._send(
                    500,
                    fault(
                        "ErrorNonExistentMailbox",
                        f"The SMTP address has no mailbox associated with it. ({target})",
                    ),
                )
                return
            # Exchange: impersonation needs the ApplicationImpersonation role *and* the
            # target inside the assignment's management scope; otherwise the whole request
            # fails with ErrorImpersonateUserDenied.
            if not emulator.directory.may_impersonate(caller, target):
                log.info("impersonation of %s by %s denied", target, caller.username)
                self._send(
                    500,
                    fault(
                        "ErrorImpersonateUserDenied",
                        "The account does not have permission to impersonate the requested user.",
                    ),
                )
                return
            mailbox = target
        if request.name not in _PROTOCOL_OPERATIONS:
            decision = emulator.directory.count_request(mailbox or caller.smtp)
            if decision.busy and decision.style == "http503":
                # RFC 9110 §10.2.3: Retry-After in whole seconds.
                retry_after = str(max(1, -(-decision.back_off_ms // 1000)))
                self._send(503, b"", "text/plain", Retry_After=retry_after)
                return
            if decision.busy:
                self._send(
                    500,
                    fault(
                        "ErrorServerBusy",
                        "The server cannot service this request right now. Try again later.",
                        {"BackOffMilliseconds": str(decision.back_off_ms)},
                    ),
                )
                return
        ctx = RequestContext(emulator.store, emulator.directory, caller.smtp, mailbox)
        if request.name == "GetStreamingEvents":
            self._stream(ctx, request.operation)
            return
        handler = _ACCOUNT_OPERATIONS.get(request.name)
        if handler is None:
            self._send(
                500,
                fault("ErrorSchemaValidation", f"The emulator does not implement {request.name}."),
            )
            return
        if not mailbox and request.name not in _PROTOCOL_OPERATIONS:
            self._send(
                500,
                fault(
                    "ErrorMissingEmailAddress",
                    "When making a request as an account that does not have a mailbox, you must "
                    "specify the mailbox primary SMTP address for any distinguished folder Ids.",
                ),
            )
            return
        self._send(200, envelope(handler(ctx, request.operation)))

    def _stream(self, ctx: RequestContext, op: ET.Element) -> None:
        checked = streaming_check(ctx, op)
        if isinstance(checked, ET.Element):
            self._send(200, envelope(checked))
            return
        sids, timeout = checked
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            emulator = self.server.emulator
            for doc in streaming_documents(
                ctx, sids, timeout, emulator.config, self.server.stopping
            ):
                self.wfile.write(f"{len(doc):X}\r\n".encode() + doc + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True


class EwsHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5; a connector opening dozens of streaming
    # connections at once (15,000 mailboxes are 75 groups) would see SYNs dropped and
    # retried a second later. IIS's listen queue is far larger.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: EwsEmulator) -> None:
        self.emulator = emulator
        self.stopping = threading.Event()
        self._count_lock = threading.Lock()
        #: TCP connections accepted since start, and those open now (what a benchmark
        #: reports as the connector's connections to Exchange).
        self.accepted = 0
        self.open_connections = 0
        super().__init__(address, EwsRequestHandler)

    def shutdown_request(self, request: Any) -> None:
        # socketserver calls it once for every request get_request returned, on every path.
        with self._count_lock:
            self.open_connections -= 1
        super().shutdown_request(request)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        # Headers and body leave in separate writes (end_headers(), then the body): with
        # Nagle's algorithm the body would wait for the client's delayed ACK of the headers
        # (~40 ms on Linux) on every small answer.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The TLS handshake runs lazily in the connection's own thread, so one slow client
        # cannot stall accept().
        tls = self.emulator.tls_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        tls.settimeout(IDLE_TIMEOUT)
        with self._count_lock:
            self.accepted += 1
            self.open_connections += 1
        return tls, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)
