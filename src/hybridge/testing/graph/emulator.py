"""``GraphEmulator``: the object tests hold — the HTTPS server, its tenant and its calendars.

One listener serves both hosts a Graph client talks to: the identity platform
(``/{tenant}/...``, login.microsoftonline.com in production) and Graph
(``/v1.0/...``, graph.microsoft.com). Tests point the backend's ``authority`` and
``graph_url`` at :attr:`authority_url` and :attr:`graph_url`.

The Python API (``add_event``, ``update_event``, ``delete_event``, ``update_occurrence``,
``delete_occurrence``, ``cancel_occurrence``, ``set_throttle``,
``grant``/``revoke``, ``invalidate_delta_tokens``, ``expire_issued_tokens``) changes the
tenant the way another client or an Exchange admin would, while clients are connected.
"""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hybridge.testing.graph.config import GraphTenantConfig, RoleAssignment, ThrottlePolicy
from hybridge.testing.graph.delta import DeltaTokens
from hybridge.testing.graph.identity import IdentityPlatform
from hybridge.testing.graph.server import GraphHttpServer
from hybridge.testing.graph.store import (
    AttendeeType,
    BodyType,
    CalendarStore,
    Event,
    Pattern,
    occurrence_id,
)


@dataclass(frozen=True)
class AutomaticReplies:
    """A mailbox's ``automaticRepliesSetting``."""

    status: Literal["disabled", "alwaysEnabled", "scheduled"] = "disabled"
    reply: str = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None


class GraphEmulator:
    """Microsoft identity platform + Graph v1.0 calendar endpoints over HTTPS."""

    def __init__(
        self,
        config: GraphTenantConfig,
        *,
        cert_file: Path,
        key_file: Path,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config
        self.store = CalendarStore()
        for mailbox in config.mailboxes:
            self.store.ensure_mailbox(mailbox.address)
        self.tokens = DeltaTokens()
        self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.tls_context.load_cert_chain(str(cert_file), str(key_file))
        self._lock = threading.Lock()
        self._assignments: list[RoleAssignment] = list(config.assignments)
        self._throttles: dict[str, ThrottlePolicy] = {}
        self._replies: dict[str, AutomaticReplies] = {}
        #: (method, path) of every request, for tests that count round trips.
        self.requests: list[tuple[str, str]] = []
        #: Called with (method, path) before each request is handled: lets a test act as
        #: another client at an exact moment (an edit between a GET and a PATCH).
        self.on_request: Callable[[str, str], None] | None = None
        self._httpd = GraphHttpServer((host, port), self)
        self.identity = IdentityPlatform(config, self.base_url)
        self._thread: threading.Thread | None = None

    # -- addresses ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = str(self._httpd.server_address[0])
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self._httpd.server_address[1]}"

    @property
    def authority_url(self) -> str:
        return f"{self.base_url}/{self.config.tenant_id}"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    # -- directory and RBAC -----------------------------------------------------------------

    def resolve_user(self, user: str) -> str | None:
        """The mailbox address ``user`` (address or object id) names, or None."""
        key = user.lower()
        for mailbox in self.config.mailboxes:
            if key in (mailbox.address, mailbox.object_id.lower()):
                return mailbox.address
        return None

    def may_access(self, client_id: str, mailbox: str, roles: frozenset[str]) -> bool:
        """True when ``client_id`` holds one of ``roles`` over ``mailbox``."""
        app = next((a for a in self.config.apps if a.client_id == client_id), None)
        if app is not None and app.entra_roles & roles:
            return True  # tenant-wide Entra consent: every mailbox
        with self._lock:
            return any(
                a.client_id == client_id
                and a.role in roles
                and (a.scope is None or mailbox in a.scope)
                for a in self._assignments
            )

    def grant(self, assignment: RoleAssignment) -> None:
        """``New-ManagementRoleAssignment``."""
        with self._lock:
            self._assignments.append(assignment)

    def revoke(self, client_id: str) -> None:
        """Remove every role assignment of ``client_id``."""
        with self._lock:
            self._assignments = [a for a in self._assignments if a.client_id != client_id]

    # -- throttling and settings ------------------------------------------------------------

    def set_throttle(self, mailbox: str, policy: ThrottlePolicy | None) -> None:
        with self._lock:
            if policy is None:
                self._throttles.pop(mailbox.lower(), None)
            else:
                self._throttles[mailbox.lower()] = policy

    def take_throttle(self, mailbox: str) -> ThrottlePolicy | None:
        """The policy throttling this request for ``mailbox`` (None: let it through)."""
        with self._lock:
            policy = self._throttles.get(mailbox)
            if policy is None:
                return None
            if policy.responses is not None:
                if policy.responses <= 0:
                    del self._throttles[mailbox]
                    return None
                self._throttles[mailbox] = ThrottlePolicy(
                    policy.retry_after, policy.status, policy.responses - 1
                )
            return policy

    def set_automatic_replies(self, mailbox: str, setting: AutomaticReplies) -> None:
        with self._lock:
            self._replies[mailbox.lower()] = setting

    def automatic_replies(self, mailbox: str) -> AutomaticReplies:
        with self._lock:
            return self._replies.get(mailbox.lower(), AutomaticReplies())

    def invalidate_delta_tokens(self, mailbox: str) -> int:
        """Forget ``mailbox``'s skip/delta tokens: its next delta request gets 410."""
        return self.tokens.invalidate(mailbox)

    def expire_issued_tokens(self) -> int:
        """Every access token issued so far now fails with 401 "token is expired"."""
        return self.identity.expire_issued_tokens()

    # -- calendar content -------------------------------------------------------------------

    def add_event(
        self,
        mailbox: str,
        subject: str,
        *,
        start: dt.datetime,
        end: dt.datetime,
        time_zone: str = "UTC",
        body: str = "",
        body_type: BodyType = "text",
        location: str = "",
        organizer: str | None = None,
        attendees: tuple[tuple[str, AttendeeType], ...] = (),
        pattern: Pattern | None = None,
    ) -> str:
        """Create an event as its organizer's client would; returns its id."""
        event = Event(
            event_id="new",
            mailbox=mailbox.lower(),
            subject=subject,
            start=start,
            end=end,
            time_zone=time_zone,
            body=body,
            body_type=body_type,
            location=location,
            organizer=(organizer or mailbox).lower(),
            attendees=tuple((a.lower(), t) for a, t in attendees),
            pattern=pattern,
        )
        return self.store.add(event).event_id

    def update_event(self, event_id: str, **changes: object) -> None:
        """Change fields of an event (``subject``, ``body``, ``start`` ...)."""
        self.store.update(event_id, **changes)

    def delete_event(self, event_id: str) -> None:
        self.store.delete(event_id)

    def occurrence_id(self, master_id: str, original_start: dt.datetime) -> str:
        """The Graph id of the series' occurrence originally at ``original_start``."""
        return occurrence_id(master_id, original_start)

    def update_occurrence(
        self, master_id: str, original_start: dt.datetime, **changes: object
    ) -> str:
        """Edit one occurrence as its organizer would (it becomes an exception): any of
        ``subject``, ``body``, ``body_type``, ``location``, ``start``, ``end``. Returns its id.
        """
        return self.store.modify_occurrence(master_id, original_start, **changes).instance_id

    def delete_occurrence(self, master_id: str, original_start: dt.datetime) -> str:
        """Delete (cancel) one occurrence as its organizer would; returns its id."""
        return self.store.delete_occurrence(master_id, original_start).instance_id

    def cancel_occurrence(self, master_id: str, original_start: dt.datetime) -> str:
        """Mark one occurrence ``isCancelled``, as an attendee's copy shows an occurrence
        its organizer cancelled; returns its id."""
        return self.store.cancel_occurrence(master_id, original_start).instance_id

    def event(self, event_id: str) -> Event:
        return self.store.get(event_id)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> GraphEmulator:
        """Serve from a background thread; returns self."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
