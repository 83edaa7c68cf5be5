"""The connector's Exchange configurations: save (tested first), test, links, export.

``ExchangeService`` is what the pages, the JSON API and ``hybridge connector calendar`` use:

- ``save`` runs the connection test with the configuration being saved and the password
  (the new one, else the stored one) and stores nothing when the test fails, unless the
  caller insists (``save_anyway``), as the real product does. With no password anywhere yet
  (the Exchange admin will enter it through a link) there is nothing to test and the
  configuration is saved as "password not set".
- Turning TLS certificate verification off needs ``confirm_insecure``; TLS itself stays on.
  Verification uses the trust store's *platform* anchors (manual + cloud), never the
  bootstrap set (DESIGN.md §3: bootstrap anchors only verify the registration endpoints).
- The password is a vault secret; this service hands it to ``test_connection`` and nowhere
  else, and only for the endpoint it was entered for (a changed endpoint without a new
  password deletes it). Audit records name configurations, codes and actors only.
"""

from __future__ import annotations

import dataclasses
import ssl
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from hybridge.connector.credential_link import CredentialLinks, IssuedLink, links_table
from hybridge.connector.exchange_common import (
    check_secret_text,
    delete_secret,
    name_owner,
    record_test,
    stored_secret,
)
from hybridge.connector.exchange_config import (
    PASSWORD_PURPOSE,
    ExchangeConfig,
    ExchangeRecord,
    config_values,
    configs_table,
    record_from_row,
)
from hybridge.connector.exchange_errors import (
    ExchangeConfigInvalid,
    ExchangeConfigNotFound,
    InsecureNotConfirmed,
    PasswordNotSet,
)
from hybridge.connector.exchange_graph import GraphConfigService
from hybridge.storage.db import Database
from hybridge.truststore import TrustStore, TrustStoreError, TrustUse
from hybridge.vault import Secret, Vault
from hybridge.vault.records import audit
from hybridge.web.clock import Clock

if TYPE_CHECKING:
    # Imported where used: exchangelib costs ~1 s at import, and most commands never test.
    from hybridge.calendar.ews import ConnectionTestResult

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SaveOutcome:
    """What ``save`` did: ``saved`` or not, the record, and the test that decided."""

    saved: bool
    record: ExchangeRecord | None
    test: ConnectionTestResult | None
    forced: bool = False
    #: The endpoint changed without a new password: the stored one was deleted.
    password_dropped: bool = False

    def view(self) -> dict[str, Any]:
        """The API's answer."""
        return {
            "saved": self.saved,
            "saved_despite_failed_test": self.forced,
            "password_dropped": self.password_dropped,
            "config": None if self.record is None else self.record.public_view(),
            "test": None if self.test is None else test_view(self.test),
        }


def test_view(result: ConnectionTestResult) -> dict[str, Any]:
    """A connection test result as JSON (it never holds the password)."""
    return {
        "ok": result.ok,
        "code": result.code,
        "message": result.message,
        "fix": result.fix or None,
        "ews_url": result.ews_url,
        "server_version": result.server_version,
        "retry_after_seconds": result.retry_after_seconds,
    }


test_view.__test__ = False  # type: ignore[attr-defined]


def check_password(password: Secret) -> Secret:
    """``password`` if it is 1 to 1024 bytes of UTF-8. Raises ``ExchangeConfigInvalid``."""
    return check_secret_text(password, "the password")


class ExchangeService:
    """Exchange configurations over the node database, the vault and the trust store."""

    def __init__(
        self,
        database: Database,
        vault: Vault,
        store: TrustStore,
        clock: Clock,
        *,
        test_timeout: float = 20.0,
        autodiscover_urls: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        """``autodiscover_urls`` maps an e-mail address to the Autodiscover endpoints to try
        (default: MS-OXDSCLI's, from its domain); tests point it at the emulator."""
        self._autodiscover_urls = autodiscover_urls
        self._db = database
        self._vault = vault
        self._store = store
        self._clock = clock
        self._timeout = test_timeout
        self.links = CredentialLinks(database, clock)
        #: Exchange Online (Microsoft Graph) configurations, beside the EWS ones.
        self.graph = GraphConfigService(
            database,
            vault,
            store,
            clock,
            test_timeout=test_timeout,
            names_taken=lambda: frozenset(r.config.display_name for r in self.configs()),
            links=self.links.for_graph(),
        )

    # -- reading -----------------------------------------------------------------------

    def _record(self, row: Any) -> ExchangeRecord:
        ref = self._vault.find(PASSWORD_PURPOSE, row.id)
        return record_from_row(row, None if ref is None else self._vault.metadata(ref))

    def configs(self) -> tuple[ExchangeRecord, ...]:
        """Every configuration, by display name."""
        with self._db.transaction() as session:
            rows = session.execute(
                sa.select(configs_table).order_by(configs_table.c.display_name)
            ).all()
        return tuple(self._record(row) for row in rows)

    def get(self, config_id: str) -> ExchangeRecord:
        """The configuration ``config_id``. Raises ``ExchangeConfigNotFound``."""
        with self._db.transaction() as session:
            row = session.execute(
                sa.select(configs_table).where(configs_table.c.id == config_id)
            ).first()
        if row is None:
            raise ExchangeConfigNotFound(f"no Exchange configuration with id {config_id!r}")
        return self._record(row)

    def export(self) -> dict[str, Any]:
        """Every configuration's public view (the export never holds a password)."""
        return {
            "exchange_configs": [r.public_view() for r in self.configs()],
            "graph_configs": [r.public_view() for r in self.graph.configs()],
        }

    # -- testing -----------------------------------------------------------------------

    def _ssl_context(self, config: ExchangeConfig) -> ssl.SSLContext | ConnectionTestResult:
        from hybridge.calendar.ews import ConnectionTestResult

        if not config.verify_tls:
            # TLS stays on; only the certificate check is off, because the admin confirmed
            # it (and the page carries a permanent warning).
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return self._store.ssl_context(TrustUse.PLATFORM)
        except TrustStoreError as exc:
            return ConnectionTestResult(
                "tls_untrusted",
                f"No CA certificate is installed in the connector's trust store, so "
                f"Exchange's certificate cannot be verified ({exc}). Add the CA that issued "
                "the Exchange server's certificate on the Trust store page.",
            )

    def run_test(self, config: ExchangeConfig, password: Secret) -> ConnectionTestResult:
        """Test ``config`` with ``password`` (EWS over TLS, impersonating the test mailbox)."""
        from hybridge.calendar.ews import test_connection

        context = self._ssl_context(config)
        if not isinstance(context, ssl.SSLContext):
            return context
        candidates = None
        if config.autodiscover_email is not None and self._autodiscover_urls is not None:
            candidates = self._autodiscover_urls(config.autodiscover_email)
        return test_connection(
            config.ews_settings(self._timeout),
            password.reveal_text(),
            ssl_context=context,
            autodiscover_urls=candidates,
        )

    def _stored_password(self, config_id: str) -> Secret | None:
        return stored_secret(self._vault, PASSWORD_PURPOSE, config_id)

    def test(self, config_id: str, *, actor: str) -> ConnectionTestResult:
        """Test the stored configuration with its stored password; records the outcome.

        Raises:
            ExchangeConfigNotFound, PasswordNotSet.
        """
        record = self.get(config_id)
        password = self._stored_password(config_id)
        if password is None:
            raise PasswordNotSet(
                f"Exchange configuration {record.config.display_name!r} has no impersonation "
                "password yet; create a credential-entry link for the Exchange admin, or set it"
            )
        result = self.run_test(record.config, password)
        self._record_test(config_id, result, actor)
        return result

    def _record_test(self, config_id: str, result: ConnectionTestResult, actor: str) -> None:
        record_test(
            self._db,
            configs_table,
            config_id,
            result.code,
            now=self._clock(),
            actor=actor,
            action="exchange.test",
        )
        log.info("exchange.test", config_id=config_id, code=result.code, actor=actor)

    # -- saving ------------------------------------------------------------------------

    def save(
        self,
        config: ExchangeConfig,
        *,
        actor: str,
        config_id: str | None = None,
        password: Secret | None = None,
        save_anyway: bool = False,
        confirm_insecure: bool = False,
    ) -> SaveOutcome:
        """Create (``config_id`` None) or replace a configuration, after testing it.

        Returns ``SaveOutcome(saved=False, test=<failure>)`` and stores nothing when the test
        fails and ``save_anyway`` is false. A changed endpoint (EWS URL, Autodiscover address
        or redirect hosts, certificate verification) without a new password is saved
        untested and its stored password is deleted: it is never sent to the new endpoint.

        Raises:
            ExchangeConfigNotFound: ``config_id`` does not exist.
            ExchangeConfigInvalid: a bad password, or the display name is taken.
            InsecureNotConfirmed: verification turned off without ``confirm_insecure``.
        """
        previous = self.get(config_id) if config_id is not None else None
        if password is not None:
            check_password(password)
        was_verifying = previous is None or previous.config.verify_tls
        if not config.verify_tls and was_verifying and not confirm_insecure:
            raise InsecureNotConfirmed(
                "turning TLS certificate verification off lets anyone on the network path "
                "impersonate Exchange and collect the impersonation password; confirm it "
                "explicitly (confirm_insecure) if you accept that"
            )
        self._check_name_free(config.display_name, config_id)
        # The stored password is only ever sent where it was entered for. Were it reused
        # after the endpoint changed, a connector admin could point the test at a server of
        # theirs and collect it (Basic sends it as is; NTLM's answer can be cracked offline).
        # So a changed endpoint without a new password drops the stored one (the Exchange
        # admin enters it again through a link) and nothing is sent anywhere.
        moved = previous is not None and _endpoint(previous.config) != _endpoint(config)
        drop_stored = moved and password is None and previous is not None and previous.password
        candidate = password
        if candidate is None and config_id is not None and not moved:
            candidate = self._stored_password(config_id)
        result = None if candidate is None else self.run_test(config, candidate)
        forced = result is not None and not result.ok
        if forced and not save_anyway:
            log.info("exchange.save_refused", config_id=config_id, code=result and result.code)
            return SaveOutcome(False, previous, result)
        new_id = config_id or uuid.uuid4().hex
        now = self._clock()
        with self._db.transaction() as session:
            values = config_values(config) | {"updated_at": now, "updated_by": actor}
            if result is not None:
                values |= {"last_test_code": result.code, "last_test_at": now}
            if previous is None:
                session.execute(
                    sa.insert(configs_table).values(
                        id=new_id, created_at=now, created_by=actor, **values
                    )
                )
            else:
                session.execute(
                    sa.update(configs_table).where(configs_table.c.id == new_id).values(**values)
                )
            detail = (
                f"config={new_id} name={config.display_name!r} username={config.username} "
                f"auth={config.auth} verify_tls={config.verify_tls} "
                f"test={result.code if result else 'not run'}"
                f"{' saved-anyway' if forced else ''}"
                f"{' password-dropped:endpoint-changed' if drop_stored else ''}"
            )
            action = "exchange.config.create" if previous is None else "exchange.config.update"
            audit(session, now, actor, action, [new_id], [], detail)
        if password is not None:
            self._vault.put(PASSWORD_PURPOSE, new_id, password, actor=actor)
        elif drop_stored:
            delete_secret(self._vault, PASSWORD_PURPOSE, new_id, actor=actor)
        log.info("exchange.saved", config_id=new_id, actor=actor, forced=forced)
        return SaveOutcome(True, self.get(new_id), result, forced, bool(drop_stored))

    def _check_name_free(self, name: str, config_id: str | None) -> None:
        other = name_owner(self._db, configs_table, name)
        if other is not None and other != config_id:
            raise ExchangeConfigInvalid(f"display name {name!r} is already used by {other!r}")

    def delete(self, config_id: str, *, actor: str) -> None:
        """Remove the configuration, its links and its password. Raises ``...NotFound``."""
        record = self.get(config_id)
        now = self._clock()
        with self._db.transaction() as session:
            session.execute(sa.delete(links_table).where(links_table.c.config_id == config_id))
            session.execute(sa.delete(configs_table).where(configs_table.c.id == config_id))
            audit(
                session,
                now,
                actor,
                "exchange.config.delete",
                [],
                [config_id],
                f"name={record.config.display_name!r}",
            )
        delete_secret(self._vault, PASSWORD_PURPOSE, config_id, actor=actor)

    # -- credential-entry links ---------------------------------------------------------

    def create_link(self, config_id: str, *, actor: str) -> IssuedLink:
        """A one-time link for the Exchange admin. Raises ``ExchangeConfigNotFound``."""
        self.get(config_id)
        link = self.links.create(config_id, actor=actor)
        log.info("exchange.link.create", link_id=link.link_id, config_id=config_id, actor=actor)
        return link

    def enter_credentials(
        self,
        config_id: str,
        token: str,
        *,
        username: str,
        password: Secret,
        csrf_nonce: str | None,
        csrf_token: str | None,
        used_from: str,
    ) -> ExchangeRecord:
        """The Exchange admin's submission: check the link and its CSRF token, burn the link,
        store username and password. Returns the updated record.

        Raises:
            CredentialLinkError (LinkNotFound, LinkWrongConfiguration, LinkUsed, LinkExpired,
            LinkCsrfRejected), ExchangeConfigInvalid (bad username or password).
        """
        link = self.links.open(config_id, token)
        link.check_csrf(csrf_nonce, csrf_token)
        record = self.get(config_id)
        check_password(password)
        config = dataclasses.replace(record.config, username=username)
        # Burn the link first: if storing fails afterwards the link is spent and a new one is
        # needed, but a link can never set two passwords.
        self.links.consume(link, used_from=used_from, username=config.username)
        actor = f"exchange-admin:{config.username} via link {link.link_id}"
        now = self._clock()
        with self._db.transaction() as session:
            session.execute(
                sa.update(configs_table)
                .where(configs_table.c.id == config_id)
                .values(username=config.username, updated_at=now, updated_by=actor)
            )
        self._vault.put(PASSWORD_PURPOSE, config_id, password, actor=actor)
        log.info("exchange.link.used", link_id=link.link_id, config_id=config_id)
        return self.get(config_id)


def _endpoint(config: ExchangeConfig) -> tuple[object, ...]:
    """What decides where the password goes (and whether that server is authenticated)."""
    return (config.ews_url, config.autodiscover_email, config.redirect_hosts, config.verify_tls)


__all__ = ["ExchangeService", "SaveOutcome", "check_password", "test_view"]
