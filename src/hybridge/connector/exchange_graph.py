"""The connector's Exchange Online (Microsoft Graph) configurations: the service.

Exchange Online serves no EWS to new applications and has no impersonation role, so the
calendar connector reaches it through Graph as an *application* (OAuth 2.0 client
credentials): the admin configures the tenant id, the app registration's client id and its
client secret, and optionally the authority and Graph URLs (national clouds; tests point
them at the emulator).

- The client secret is a vault secret, purpose :data:`SECRET_PURPOSE`, record = the
  configuration id, handled exactly as the EWS impersonation password: write-only, shown as
  "set on <date> by <who>", never logged, returned or rendered.
- ``save`` runs ``check_connection`` (sign-in + the test mailbox's first delta page) and
  stores nothing when it fails, unless ``save_anyway``.
- TLS to the identity platform and Graph is verified by the trust store's *platform*
  anchors only (DESIGN.md §3: bootstrap anchors only verify the registration endpoints);
  there is no opt-out here, unlike EWS on premises: Microsoft's cloud has public
  certificates.
- The stored secret is only sent to the authority it was entered for: a changed authority,
  tenant or Graph URL without a new secret deletes it (see ``save``).
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from hybridge.connector.credential_link import CredentialLinks, IssuedLink
from hybridge.connector.exchange_common import (
    bookkeeping_of,
    check_secret_text,
    delete_secret,
    name_owner,
    record_test,
    stored_secret,
)
from hybridge.connector.exchange_errors import (
    ExchangeConfigInvalid,
    ExchangeConfigNotFound,
    PasswordNotSet,
)
from hybridge.connector.exchange_graph_config import (
    SECRET_PURPOSE,
    GraphConfig,
    GraphRecord,
    graph_configs_table,
)
from hybridge.storage.db import Database
from hybridge.truststore import TrustStore, TrustStoreError, TrustUse
from hybridge.vault import Secret, Vault
from hybridge.vault.records import audit
from hybridge.web.clock import Clock

if TYPE_CHECKING:
    # Imported where used: msal and httpx cost at import, and most commands never test.
    from hybridge.calendar.graph import GraphCheckResult

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class GraphSaveOutcome:
    """What ``save`` did: ``saved`` or not, the record, and the check that decided."""

    saved: bool
    record: GraphRecord | None
    test: GraphCheckResult | None
    forced: bool = False
    #: The endpoint changed without a new secret: the stored one was deleted.
    secret_dropped: bool = False

    def view(self) -> dict[str, Any]:
        """The API's answer."""
        return {
            "saved": self.saved,
            "saved_despite_failed_test": self.forced,
            "secret_dropped": self.secret_dropped,
            "config": None if self.record is None else self.record.public_view(),
            "test": None if self.test is None else check_view(self.test),
        }


def check_view(result: GraphCheckResult) -> dict[str, Any]:
    """A connection check as JSON (it never holds the secret)."""
    return {
        "ok": result.ok,
        "code": result.code,
        "message": result.message,
        "fix": result.fix or None,
        "retry_after_seconds": result.retry_after_seconds,
    }


def check_secret(secret: Secret) -> Secret:
    """``secret`` if it is 1 to 1024 bytes of UTF-8. Raises ``ExchangeConfigInvalid``."""
    return check_secret_text(secret, "the client secret")


class GraphConfigService:
    """Graph configurations over the node database, the vault and the trust store."""

    def __init__(
        self,
        database: Database,
        vault: Vault,
        store: TrustStore,
        clock: Clock,
        *,
        test_timeout: float = 20.0,
        names_taken: Callable[[], frozenset[str]] = frozenset,
        links: CredentialLinks | None = None,
    ) -> None:
        """``names_taken`` gives the EWS configurations' display names: the admin sees one
        list, so a name is unique across both kinds. ``links`` are the Graph configurations'
        credential-entry links (``CredentialLinks.for_graph()``; default: a new one)."""
        self._names_taken = names_taken
        self.links = links if links is not None else CredentialLinks(database, clock).for_graph()
        self._db = database
        self._vault = vault
        self._store = store
        self._clock = clock
        self._timeout = test_timeout

    # -- reading -----------------------------------------------------------------------

    def _record(self, row: Any) -> GraphRecord:
        ref = self._vault.find(SECRET_PURPOSE, row.id)
        return GraphRecord(
            id=row.id,
            config=GraphConfig(
                display_name=row.display_name,
                tenant_id=row.tenant_id,
                client_id=row.client_id,
                test_mailbox=row.test_mailbox,
                authority_host=row.authority_host,
                graph_url=row.graph_url,
            ),
            client_secret=None if ref is None else self._vault.metadata(ref),
            **bookkeeping_of(row),
        )

    def configs(self) -> tuple[GraphRecord, ...]:
        """Every Graph configuration, by display name."""
        with self._db.transaction() as session:
            rows = session.execute(
                sa.select(graph_configs_table).order_by(graph_configs_table.c.display_name)
            ).all()
        return tuple(self._record(row) for row in rows)

    def get(self, config_id: str) -> GraphRecord:
        """The configuration ``config_id``. Raises ``ExchangeConfigNotFound``."""
        with self._db.transaction() as session:
            row = session.execute(
                sa.select(graph_configs_table).where(graph_configs_table.c.id == config_id)
            ).first()
        if row is None:
            raise ExchangeConfigNotFound(f"no Exchange Online configuration with id {config_id!r}")
        return self._record(row)

    def stored_secret(self, config_id: str) -> Secret | None:
        """The vault's client secret of ``config_id`` (for the backend only), or None."""
        return stored_secret(self._vault, SECRET_PURPOSE, config_id)

    # -- testing -----------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """The platform trust store's context. Raises ``TrustStoreError``."""
        # DESIGN.md §3 invariant 1: the identity platform and Graph are verified by the
        # platform anchors, never by the bootstrap set, certifi or the system store.
        return self._store.ssl_context(TrustUse.PLATFORM)

    def run_check(self, config: GraphConfig, secret: Secret) -> GraphCheckResult:
        """Sign in with ``secret`` and read the test mailbox's first delta page."""
        from hybridge.calendar.graph import GraphCheckResult, check_connection

        try:
            context = self.ssl_context()
        except TrustStoreError as exc:
            return GraphCheckResult(
                "tls_untrusted",
                f"No CA certificate is installed in the connector's trust store, so the "
                f"identity platform's certificate cannot be verified ({exc}).",
                "Add the CA on the Trust store page (or let the cloud push its CA list).",
            )
        return check_connection(config.graph_settings(secret, self._timeout), context)

    def test(self, config_id: str, *, actor: str) -> GraphCheckResult:
        """Check the stored configuration with its stored secret; records the outcome.

        Raises:
            ExchangeConfigNotFound, PasswordNotSet (no client secret stored).
        """
        record = self.get(config_id)
        secret = self.stored_secret(config_id)
        if secret is None:
            raise PasswordNotSet(
                f"Exchange Online configuration {record.config.display_name!r} has no client "
                "secret yet; enter it"
            )
        result = self.run_check(record.config, secret)
        record_test(
            self._db,
            graph_configs_table,
            config_id,
            result.code,
            now=self._clock(),
            actor=actor,
            action="graph.test",
        )
        log.info("graph.test", config_id=config_id, code=result.code, actor=actor)
        return result

    # -- saving ------------------------------------------------------------------------

    def save(
        self,
        config: GraphConfig,
        *,
        actor: str,
        config_id: str | None = None,
        client_secret: Secret | None = None,
        save_anyway: bool = False,
    ) -> GraphSaveOutcome:
        """Create (``config_id`` None) or replace a configuration, after checking it.

        Returns ``GraphSaveOutcome(saved=False, test=<failure>)`` and stores nothing when
        the check fails and ``save_anyway`` is false. Without a secret anywhere yet, the
        configuration is saved unchecked ("client secret not set").

        Raises:
            ExchangeConfigNotFound: ``config_id`` does not exist.
            ExchangeConfigInvalid: a bad secret, or the display name is taken.
        """
        previous = self.get(config_id) if config_id is not None else None
        if client_secret is not None:
            check_secret(client_secret)
        self._check_name_free(config.display_name, config_id, self._names_taken())
        # The stored secret goes only to the authority it was entered for: were it reused
        # after the authority changed, a connector admin could point the check at a server
        # of theirs and collect it. A changed endpoint without a new secret drops it.
        moved = previous is not None and previous.config.endpoint() != config.endpoint()
        drop_stored = bool(moved and client_secret is None and previous and previous.client_secret)
        candidate = client_secret
        if candidate is None and config_id is not None and not moved:
            candidate = self.stored_secret(config_id)
        result = None if candidate is None else self.run_check(config, candidate)
        forced = result is not None and not result.ok
        if forced and not save_anyway:
            log.info("graph.save_refused", config_id=config_id, code=result and result.code)
            return GraphSaveOutcome(False, previous, result)
        new_id = config_id or uuid.uuid4().hex
        now = self._clock()
        values: dict[str, Any] = {
            "display_name": config.display_name,
            "tenant_id": config.tenant_id,
            "client_id": config.client_id,
            "test_mailbox": config.test_mailbox,
            "authority_host": config.authority_host,
            "graph_url": config.graph_url,
            "updated_at": now,
            "updated_by": actor,
        }
        if result is not None:
            values |= {"last_test_code": result.code, "last_test_at": now}
        with self._db.transaction() as session:
            if previous is None:
                session.execute(
                    sa.insert(graph_configs_table).values(
                        id=new_id, created_at=now, created_by=actor, **values
                    )
                )
            else:
                session.execute(
                    sa.update(graph_configs_table)
                    .where(graph_configs_table.c.id == new_id)
                    .values(**values)
                )
            detail = (
                f"config={new_id} name={config.display_name!r} tenant={config.tenant_id} "
                f"client={config.client_id} authority={config.authority_host} "
                f"test={result.code if result else 'not run'}"
                f"{' saved-anyway' if forced else ''}"
                f"{' secret-dropped:endpoint-changed' if drop_stored else ''}"
            )
            action = "graph.config.create" if previous is None else "graph.config.update"
            audit(session, now, actor, action, [new_id], [], detail)
        if client_secret is not None:
            self._vault.put(SECRET_PURPOSE, new_id, client_secret, actor=actor)
        elif drop_stored:
            delete_secret(self._vault, SECRET_PURPOSE, new_id, actor=actor)
        log.info("graph.saved", config_id=new_id, actor=actor, forced=forced)
        return GraphSaveOutcome(True, self.get(new_id), result, forced, drop_stored)

    def _check_name_free(self, name: str, config_id: str | None, taken: frozenset[str]) -> None:
        other = name_owner(self._db, graph_configs_table, name)
        if (other is not None and other != config_id) or name in taken:
            raise ExchangeConfigInvalid(
                f"display name {name!r} is already used by another configuration"
            )

    # -- credential-entry links ---------------------------------------------------------

    def create_link(self, config_id: str, *, actor: str) -> IssuedLink:
        """A one-time link for the admin who holds the client secret.

        Raises:
            ExchangeConfigNotFound: before anything is stored.
        """
        self.get(config_id)
        link = self.links.create(config_id, actor=actor)
        log.info("graph.link.create", link_id=link.link_id, config_id=config_id, actor=actor)
        return link

    def delete(self, config_id: str, *, actor: str) -> None:
        """Remove the configuration and its secret. Raises ``ExchangeConfigNotFound``."""
        record = self.get(config_id)
        now = self._clock()
        with self._db.transaction() as session:
            session.execute(
                sa.delete(graph_configs_table).where(graph_configs_table.c.id == config_id)
            )
            audit(
                session,
                now,
                actor,
                "graph.config.delete",
                [],
                [config_id],
                f"name={record.config.display_name!r}",
            )
        delete_secret(self._vault, SECRET_PURPOSE, config_id, actor=actor)


__all__ = ["GraphConfigService", "GraphSaveOutcome", "check_secret", "check_view"]
