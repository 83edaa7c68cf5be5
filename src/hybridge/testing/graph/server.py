"""The Graph emulator's HTTPS front door: routing, bearer tokens, RBAC scope, throttling.

Built on the standard library's ``ThreadingHTTPServer`` (like the EWS emulator) rather than
an ASGI app under uvicorn: every endpoint here is a short synchronous request against an
in-memory store guarded by one lock, so an event loop buys nothing; a thread per
connection starts in milliseconds inside a test process, needs no second server stack, and
keeps HTTP/1.1 keep-alive (msal and httpx reuse connections) with TLS from ``ssl`` directly.

Request pipeline for ``/v1.0``, in Graph's order: bearer token (401
``InvalidAuthenticationToken``) -> the user (404 ``ErrorInvalidUser``) -> the application's
RBAC for Applications grants over that mailbox (403 ``ErrorAccessDenied``) -> the
mailbox's throttling (429/503 with ``Retry-After``) -> the operation.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from hybridge.testing.graph.config import (
    CALENDARS_READ,
    CALENDARS_READWRITE,
    MAILBOX_SETTINGS_READ,
)
from hybridge.testing.graph.delta import SyncStateNotFoundError
from hybridge.testing.graph.errors import GraphHttpError, parse_time
from hybridge.testing.graph.identity import TokenError, TokenFailure
from hybridge.testing.graph.resources import (
    date_time_time_zone,
    event_changes,
    event_json,
    prefer,
)
from hybridge.testing.graph.store import Event, GraphStoreError, Instance

if TYPE_CHECKING:
    from hybridge.testing.graph.emulator import GraphEmulator

log = logging.getLogger("hybridge.testing.graph")

#: Requests remembered in ``GraphEmulator.requests`` (tests count round trips).
_MAX_REQUEST_LOG = 10_000
#: Largest request body accepted (Graph's limit for a JSON request is 4 MB).
MAX_REQUEST_BYTES = 4 * 1024 * 1024

_OPENID = re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")
_USER = r"^/v1\.0/users/(?P<user>[^/]+)"
_DELTA = re.compile(_USER + r"(?:/calendar)?/calendarView/delta$", re.IGNORECASE)
_EVENT = re.compile(_USER + r"(?:/calendar)?/events/(?P<event>[^/]+)$", re.IGNORECASE)
_OOF = re.compile(_USER + r"/mailboxSettings/automaticRepliesSetting$", re.IGNORECASE)

_READ = frozenset({CALENDARS_READ, CALENDARS_READWRITE})
_WRITE = frozenset({CALENDARS_READWRITE})
_SETTINGS = frozenset({MAILBOX_SETTINGS_READ})


class GraphHandler(BaseHTTPRequestHandler):
    server: GraphHttpServer
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    @property
    def emulator(self) -> GraphEmulator:
        return self.server.emulator

    # -- plumbing -------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True  # the unread body would be parsed as a request
            raise GraphHttpError(413, "RequestEntityTooLarge", f"body of {length} bytes")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; odata.metadata=minimal")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _graph_error(self, exc: GraphHttpError) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        inner = {"date": now, "request-id": str(uuid.uuid4())}
        if client_request_id := self.headers.get("client-request-id"):
            inner["client-request-id"] = client_request_id
        body = {"error": {"code": exc.code, "message": exc.message, "innerError": inner}}
        self._send(exc.status, body, exc.headers)

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        requests = self.emulator.requests
        requests.append((method, path))
        if len(requests) > _MAX_REQUEST_LOG:
            del requests[: _MAX_REQUEST_LOG // 2]  # a long-running demo keeps the recent half
        if (hook := self.emulator.on_request) is not None:
            hook(method, path)
        try:
            if method == "GET" and (m := _OPENID.match(path)):
                self._openid(m.group("tenant"))
            elif method == "POST" and (m := _TOKEN.match(path)):
                self._token(m.group("tenant"))
            elif path.lower().startswith("/v1.0/"):
                self._graph(method, path)
            else:
                raise GraphHttpError(
                    400, "BadRequest", f"Resource not found for the segment {path!r}."
                )
        except GraphHttpError as exc:
            self._graph_error(exc)
        except Exception:
            # An emulator bug must look like a Graph 500 to the client, not a dropped socket.
            log.exception("Graph emulator failed on %s %s", method, path)
            self._graph_error(
                GraphHttpError(500, "InternalServerError", "The emulator failed; see its log.")
            )

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- identity platform ----------------------------------------------------------------

    def _openid(self, tenant: str) -> None:
        identity = self.emulator.identity
        if tenant != identity.tenant:
            error = TokenError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
            self._send(error.status, error.body())
            return
        self._send(200, identity.openid_configuration())

    def _token(self, tenant: str) -> None:
        identity = self.emulator.identity
        form = dict(parse_qsl(self._body().decode("utf-8", "replace")))
        result: dict[str, Any] | TokenError
        if tenant != identity.tenant:
            result = TokenError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        else:
            result = identity.grant(form)
        # RFC 6749 §5.1: token responses are never cached.
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if isinstance(result, TokenError):
            self._send(result.status, result.body(), no_store)
        else:
            self._send(200, result, no_store)

    # -- Graph ------------------------------------------------------------------------------

    def _authorize(self, user: str, needed: frozenset[str]) -> str:
        claims = self.emulator.identity.check(self.headers.get("Authorization"))
        if isinstance(claims, TokenFailure):
            raise GraphHttpError(
                401,
                "InvalidAuthenticationToken",
                claims.message,
                {
                    "WWW-Authenticate": 'Bearer realm="", authorization_uri='
                    '"https://login.microsoftonline.com/common/oauth2/authorize", '
                    'client_id="00000003-0000-0000-c000-000000000000"'
                },
            )
        mailbox = self.emulator.resolve_user(user)
        if mailbox is None:
            raise GraphHttpError(
                404, "ErrorInvalidUser", f"The requested user '{user}' is invalid."
            )
        if not self.emulator.may_access(str(claims["appid"]), mailbox, needed):
            # RBAC for Applications: a mailbox outside every assignment's management scope
            # is refused as if the permission did not exist.
            raise GraphHttpError(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        policy = self.emulator.take_throttle(mailbox)
        if policy is not None:
            code = "ApplicationThrottled" if policy.status == 429 else "ServiceUnavailable"
            raise GraphHttpError(
                policy.status,
                code,
                "Application is over its MailboxConcurrency limit."
                if policy.status == 429
                else "The service is temporarily unavailable.",
                {"Retry-After": str(policy.retry_after)},
            )
        return mailbox

    def _graph(self, method: str, path: str) -> None:
        query = {k.lower(): v for k, v in parse_qsl(urlsplit(self.path).query)}
        if method == "GET" and (m := _DELTA.match(path)):
            mailbox = self._authorize(unquote(m.group("user")), _READ)
            self._delta(m.group("user"), mailbox, query)
        elif method == "GET" and (m := _EVENT.match(path)):
            mailbox = self._authorize(unquote(m.group("user")), _READ)
            self._get_event(mailbox, unquote(m.group("event")))
        elif method == "PATCH" and (m := _EVENT.match(path)):
            mailbox = self._authorize(unquote(m.group("user")), _WRITE)
            self._patch_event(mailbox, unquote(m.group("event")))
        elif method == "DELETE" and (m := _EVENT.match(path)):
            mailbox = self._authorize(unquote(m.group("user")), _WRITE)
            self._delete_event(mailbox, unquote(m.group("event")))
        elif method == "GET" and (m := _OOF.match(path)):
            mailbox = self._authorize(unquote(m.group("user")), _SETTINGS)
            self._automatic_replies(mailbox)
        else:
            raise GraphHttpError(400, "BadRequest", f"Resource not found for the segment {path!r}.")

    def _delta(self, user: str, mailbox: str, query: dict[str, str]) -> None:
        emulator = self.emulator
        tz, size, body = prefer(self.headers)
        token = query.get("$skiptoken") or query.get("$deltatoken")
        try:
            if token is not None:
                state = emulator.tokens.resolve(token, mailbox)
            else:
                if "startdatetime" not in query or "enddatetime" not in query:
                    raise GraphHttpError(
                        400,
                        "ErrorInvalidParameter",
                        "This request requires a time window specified by the query string "
                        "parameters StartDateTime and EndDateTime.",
                    )
                start = parse_time(query["startdatetime"], "startDateTime")
                end = parse_time(query["enddatetime"], "endDateTime")
                state = emulator.tokens.start(emulator.store, mailbox, start, end)
        except SyncStateNotFoundError:
            raise GraphHttpError(
                410,
                "syncStateNotFound",
                "The sync state generation is not found. The delta token is expired and data "
                "must be synchronized again.",
            ) from None
        config = emulator.config
        page_size = min(size or config.default_page_size, config.max_page_size)
        page = emulator.tokens.page(emulator.store, state, page_size, tz or "UTC", body, token)
        base = f"{emulator.base_url}/v1.0/users/{quote(user, safe='@')}/calendarView/delta"
        out: dict[str, Any] = {
            "@odata.context": f"{emulator.base_url}/v1.0/$metadata#Collection(event)",
            "value": page.entries,
        }
        if page.next_token is not None:
            out["@odata.nextLink"] = f"{base}?$skiptoken={page.next_token}"
        else:
            out["@odata.deltaLink"] = f"{base}?$deltatoken={page.delta_token}"
        applied = [f"odata.maxpagesize={page_size}"] if size else []
        if tz:
            applied.append(f'outlook.timezone="{tz}"')
        self._send(200, out, {"Preference-Applied": ", ".join(applied)} if applied else None)

    def _event(
        self, mailbox: str, event_id: str
    ) -> tuple[Event, dt.datetime | None, Instance | None]:
        """(master or single event, original start of an occurrence, its instance)."""
        store = self.emulator.store
        occurrence = None
        master_id = event_id
        if event_id.startswith("OCC"):
            try:
                raw = base64.urlsafe_b64decode(event_id[3:] + "=" * (-len(event_id) % 4))
                master_id, stamp = raw.decode().split("|")
                occurrence = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            except ValueError:
                master_id = ""
        try:
            event: Event | None = store.get(master_id)
        except GraphStoreError:
            event = None
        instance = store.instance(event_id) if occurrence is not None else None
        if (
            event is None
            or event.mailbox != mailbox
            or (occurrence is not None and not store.is_occurrence(event, occurrence))
            or (instance is not None and instance.deleted)
        ):
            raise GraphHttpError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return event, occurrence, instance

    def _get_event(self, mailbox: str, event_id: str) -> None:
        event, occurrence, instance = self._event(mailbox, event_id)
        tz, _, body = prefer(self.headers)
        self._send(
            200,
            event_json(
                event, tz=tz or "UTC", body_type=body, occurrence=occurrence, instance=instance
            ),
            {"ETag": (instance or event).etag},
        )

    def _patch_event(self, mailbox: str, event_id: str) -> None:
        event, occurrence, _ = self._event(mailbox, event_id)
        changes = event_changes(self._body())
        store = self.emulator.store
        with store.lock:
            # An occurrence's ETag is its exception's, or its master's while it has none.
            current = store.instance(event_id) if occurrence is not None else None
            etag = (current or store.get(event.event_id)).etag
            if_match = self.headers.get("If-Match")
            if if_match is not None and if_match not in ("*", etag):
                raise GraphHttpError(
                    412,
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be performed because the change "
                    "key passed in the request does not match the current change key for the "
                    "item.",
                )
            if occurrence is None:
                updated, instance = store.update(event.event_id, **changes), None
            else:
                # Editing one occurrence makes it an exception of its series.
                instance = store.modify_occurrence(event.event_id, occurrence, **changes)
                updated = store.get(event.event_id)
        tz, _, _ = prefer(self.headers)
        self._send(
            200,
            event_json(updated, tz=tz or "UTC", instance=instance),
            {"ETag": (instance or updated).etag},
        )

    def _delete_event(self, mailbox: str, event_id: str) -> None:
        event, occurrence, _ = self._event(mailbox, event_id)
        if occurrence is None:
            self.emulator.store.delete(event.event_id)
        else:
            self.emulator.store.delete_occurrence(event.event_id, occurrence)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.send_header("request-id", str(uuid.uuid4()))
        self.end_headers()

    def _automatic_replies(self, mailbox: str) -> None:
        setting = self.emulator.automatic_replies(mailbox)
        start, end = setting.start, setting.end
        far = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
        self._send(
            200,
            {
                "@odata.context": f"{self.emulator.base_url}/v1.0/$metadata#users('{mailbox}')"
                "/mailboxSettings/automaticRepliesSetting",
                "status": setting.status,
                "externalAudience": "all",
                "internalReplyMessage": setting.reply,
                "externalReplyMessage": setting.reply,
                "scheduledStartDateTime": date_time_time_zone(start or far, "UTC"),
                "scheduledEndDateTime": date_time_time_zone(end or far, "UTC"),
            },
        )


class GraphHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: GraphEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, GraphHandler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        sock.settimeout(10)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens in the connection's own thread, so a slow or failing
        # client (one that refuses our certificate) never blocks the accept loop.
        try:
            tls = self.emulator.tls_context.wrap_socket(request, server_side=True)
        except OSError as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()
