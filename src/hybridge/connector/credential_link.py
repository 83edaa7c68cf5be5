"""One-time credential-entry links: how the Exchange admin enters the impersonation password
(EWS) or the application's client secret (Exchange Online, Graph).

A connector admin creates a link for one Exchange configuration and hands it to the
Exchange admin, who opens it (no connector login), sees which connector and configuration
it is for, and enters the account's username and password. The connector admin never sees
the password.

- Token: 256 random bits (``secrets.token_urlsafe(32)``; OWASP's session-id guidance asks for
  at least 64 bits of entropy, the issue for 128). Only its SHA-256 is stored: someone who
  reads the database cannot open the link.
- Lifetime 24 h, single use (``consume`` is one conditional UPDATE, so two concurrent
  submissions cannot both win), scoped to one configuration (the configuration id is in the
  URL and must match the link's). A new link for a configuration revokes its open ones.
- CSRF: the entry page sits outside the admin login, so the admin session's token cannot be
  used. The page instead sets a ``__Host-`` cookie holding a random browser nonce and puts
  ``HMAC-SHA256(link's csrf_key, nonce)`` in the form (a signed double-submit cookie, OWASP
  CSRF cheat sheet): a forged cross-site POST carries neither the SameSite cookie nor the
  HMAC, and a token made for one link is worthless for another (each has its own key).

The same rules hold for both kinds; each kind has its own table (``exchange_credential_links``,
``graph_credential_links``), whose foreign key ties a link to one configuration of that
kind, and its own URL (``/credential-entry/{id}/...``, ``/credential-entry/graph/{id}/...``).
A Graph secret entered through a link is checked against Entra ID and Graph *before* the
link is burned (a mistyped secret does not spend the link); only an accepted secret is
stored, and the link is burned first, so one link never stores two secrets.

Hand-written because it is a few table operations around ``secrets`` and ``hmac``; no
library does "one-time link bound to a record" in a way that fits the node database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from hybridge.connector.exchange_config import metadata
from hybridge.connector.exchange_errors import (
    LinkCsrfRejected,
    LinkExpired,
    LinkNotFound,
    LinkUsed,
    LinkWrongConfiguration,
)
from hybridge.storage.db import Database
from hybridge.vault.models import UtcDateTime
from hybridge.vault.records import audit
from hybridge.web.clock import Clock

if TYPE_CHECKING:
    from hybridge.calendar.graph.check import GraphCheckResult
    from hybridge.connector.exchange_graph import GraphConfigService
    from hybridge.connector.exchange_graph_config import GraphRecord
    from hybridge.vault import Secret

LINK_LIFETIME = dt.timedelta(hours=24)
TOKEN_BYTES = 32
LINK_PATH = "/credential-entry"
#: Graph (Exchange Online) links live under this path (a segment the EWS ids never are).
GRAPH_LINK_PATH = LINK_PATH + "/graph"
NONCE_COOKIE = "__Host-hybridge-credential-entry"


def _links_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("config_id", sa.String(32), nullable=False),
        sa.Column("csrf_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("used_at", UtcDateTime, nullable=True),
        sa.Column("used_from", sa.String(64), nullable=True),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
    )


links_table = _links_table("exchange_credential_links")
graph_links_table = _links_table("graph_credential_links")


def token_digest(token: str) -> str:
    """The stored form of a link token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class IssuedLink:
    """A link just created: the only moment its token exists outside the admin's hands."""

    link_id: str
    config_id: str
    token: str
    expires_at: dt.datetime
    base_path: str = LINK_PATH

    def __repr__(self) -> str:  # the token is a bearer credential: keep it out of logs
        return f"IssuedLink(link_id={self.link_id!r}, config_id={self.config_id!r})"

    def path(self) -> str:
        """The link's path on the connector (join it to the connector's base URL)."""
        return f"{self.base_path}/{self.config_id}/{self.token}"


@dataclass(frozen=True)
class OpenLink:
    """A link that may still be used (checked at ``open`` time)."""

    link_id: str
    config_id: str
    csrf_key: bytes
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime

    def __repr__(self) -> str:
        return f"OpenLink(link_id={self.link_id!r}, config_id={self.config_id!r})"

    def csrf_token(self, nonce: str) -> str:
        """The form token for the browser holding ``nonce`` in its cookie."""
        return hmac.new(self.csrf_key, nonce.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, nonce: str | None, sent: str | None) -> None:
        """Raise ``LinkCsrfRejected`` unless ``sent`` is this link's token for ``nonce``."""
        if not nonce or not sent:
            raise LinkCsrfRejected(
                "the form's security token or its cookie is missing; open the link again"
            )
        if not hmac.compare_digest(self.csrf_token(nonce).encode(), sent.encode()):
            raise LinkCsrfRejected("the form's security token is wrong; open the link again")


class CredentialLinks:
    """Create, open and consume links in the node database; audit each step."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        table: sa.Table = links_table,
        action: str = "exchange.link",
        base_path: str = LINK_PATH,
    ) -> None:
        self._db = database
        self._clock = clock
        self._table = table
        self._action = action
        self._base_path = base_path

    def for_graph(self) -> CredentialLinks:
        """The same links over ``graph_credential_links`` (Graph configurations)."""
        return CredentialLinks(
            self._db,
            self._clock,
            table=graph_links_table,
            action="exchange.graph_link",
            base_path=GRAPH_LINK_PATH,
        )

    def create(self, config_id: str, *, actor: str) -> IssuedLink:
        """A new link for ``config_id``, valid 24 h; earlier open links of it are revoked."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        link_id = secrets.token_hex(8)
        now = self._clock()
        expires = now + LINK_LIFETIME
        with self._db.transaction() as session:
            revoked = session.execute(
                sa.update(self._table)
                .where(
                    self._table.c.config_id == config_id,
                    self._table.c.used_at.is_(None),
                    self._table.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
                .returning(self._table.c.id)
            ).scalars()
            revoked_ids = list(revoked)
            session.execute(
                sa.insert(self._table).values(
                    id=link_id,
                    token_sha256=token_digest(token),
                    config_id=config_id,
                    csrf_key=secrets.token_bytes(32),
                    created_at=now,
                    created_by=actor,
                    expires_at=expires,
                )
            )
            audit(
                session,
                now,
                actor,
                f"{self._action}.create",
                [link_id],
                revoked_ids,
                f"config={config_id} expires={expires.isoformat()}",
            )
        return IssuedLink(link_id, config_id, token, expires, self._base_path)

    def open(self, config_id: str, token: str) -> OpenLink:
        """The link for ``token`` if it may be used now for ``config_id``.

        Raises:
            LinkNotFound, LinkWrongConfiguration, LinkUsed, LinkExpired.
        """
        with self._db.transaction() as session:
            row = session.execute(
                sa.select(self._table).where(self._table.c.token_sha256 == token_digest(token))
            ).first()
        return self._check(row, config_id, self._clock())

    @staticmethod
    def _check(row: sa.Row | None, config_id: str, now: dt.datetime) -> OpenLink:  # type: ignore[type-arg]
        if row is None or row.revoked_at is not None:
            raise LinkNotFound(
                "this credential-entry link is not valid (never issued, or replaced by a newer "
                "link); ask the connector admin for a new one"
            )
        if row.config_id != config_id:
            # Scoped to one configuration: a link cannot set another configuration's password.
            raise LinkWrongConfiguration(
                f"this link was issued for another Exchange configuration, not {config_id!r}"
            )
        if row.used_at is not None:
            raise LinkUsed(
                f"this credential-entry link was already used on {row.used_at:%Y-%m-%d %H:%M} "
                "UTC; a link works once. Ask the connector admin for a new one"
            )
        if now >= row.expires_at:
            raise LinkExpired(
                f"this credential-entry link expired on {row.expires_at:%Y-%m-%d %H:%M} UTC "
                "(links live 24 hours); ask the connector admin for a new one"
            )
        return OpenLink(
            row.id, row.config_id, row.csrf_key, row.created_at, row.created_by, row.expires_at
        )

    def consume(self, link: OpenLink, *, used_from: str, username: str) -> None:
        """Mark ``link`` used, atomically; audit who used it and when (never the password).

        Raises:
            LinkUsed, LinkExpired, LinkNotFound: it stopped being usable since ``open``.
        """
        now = self._clock()
        with self._db.transaction() as session:
            # One conditional UPDATE: of two concurrent submissions exactly one matches.
            result = session.execute(
                sa.update(self._table)
                .where(
                    self._table.c.id == link.link_id,
                    self._table.c.used_at.is_(None),
                    self._table.c.revoked_at.is_(None),
                    self._table.c.expires_at > now,
                )
                .values(used_at=now, used_from=used_from[:64])
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                row = session.execute(
                    sa.select(self._table).where(self._table.c.id == link.link_id)
                ).first()
                self._check(row, link.config_id, now)
                # _check raised for every reason the UPDATE can miss; kept as a safety net.
                raise LinkUsed("this credential-entry link was already used")
            audit(
                session,
                now,
                f"link:{link.link_id}",
                f"{self._action}.use",
                [],
                [link.link_id],
                f"config={link.config_id} username={username} from={used_from[:64]} "
                f"created_by={link.created_by}",
            )


@dataclass(frozen=True)
class GraphLinkOutcome:
    """A Graph secret entered through a link: ``stored`` or not, and the check's result."""

    stored: bool
    record: GraphRecord
    test: GraphCheckResult


def enter_graph_secret(
    graph: GraphConfigService,
    links: CredentialLinks,
    config_id: str,
    token: str,
    *,
    secret: Secret,
    csrf_nonce: str | None,
    csrf_token: str | None,
    used_from: str,
) -> GraphLinkOutcome:
    """The Exchange Online admin's submission of a new client secret through a link.

    The link and its CSRF token are checked, then the secret is checked against the
    configuration's authority and Graph. A refused secret stores nothing and leaves the
    link usable (``stored=False``); an accepted one burns the link, then is stored.

    Raises:
        CredentialLinkError (LinkNotFound, LinkWrongConfiguration, LinkUsed, LinkExpired,
        LinkCsrfRejected), ExchangeConfigNotFound, ExchangeConfigInvalid (a malformed
        secret).
    """
    from hybridge.connector.exchange_graph import check_secret

    link = links.open(config_id, token)
    link.check_csrf(csrf_nonce, csrf_token)
    record = graph.get(config_id)
    check_secret(secret)
    # The secret goes only to the authority shown on the entry page (the stored one).
    result = graph.run_check(record.config, secret)
    if not result.ok:
        return GraphLinkOutcome(False, record, result)
    # Burn the link first: of two concurrent submissions one wins, and a link can never
    # store two secrets. The secret was just accepted, so the save does not re-decide.
    links.consume(link, used_from=used_from, username=f"app {record.config.client_id}")
    actor = f"exchange-online-admin via link {link.link_id}"
    outcome = graph.save(
        record.config, actor=actor, config_id=config_id, client_secret=secret, save_anyway=True
    )
    return GraphLinkOutcome(True, outcome.record or graph.get(config_id), result)
