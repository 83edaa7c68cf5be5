"""Per-kind pieces of the calendar service: one place says what EWS and Graph differ in.

``calendar_service.CalendarService`` supervises one engine over whichever configuration is
in force; everything that depends on the configuration's *kind* lives here:

- ``build_engine_backend``: the ``CalendarBackend`` (and, for EWS, the streaming notifier)
  built from a stored configuration and its credential in the vault;
- ``credential_of`` / ``fingerprint_of``: whether the credential is stored, and what makes
  a running engine stale;
- ``rejected_alarm``: what the admin is told when Exchange refuses the credential — the
  impersonation password (EWS) and the application's client secret (Graph) are fixed in
  different places, so the alarm names the right one and the right remedy.

The credential is revealed once, to build the backend; it is never logged or shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hybridge.calendar.errors import CalendarError
from hybridge.calendar.sync import Alarm
from hybridge.connector.calendar_settings import CalendarSettings, ews_ssl_context, fingerprint
from hybridge.connector.exchange import ExchangeService
from hybridge.connector.exchange_config import PASSWORD_PURPOSE, ExchangeRecord
from hybridge.connector.exchange_graph_config import GraphRecord
from hybridge.truststore import TrustStore
from hybridge.vault import Vault

if TYPE_CHECKING:
    from hybridge.calendar.ews.backend import EwsBackend
    from hybridge.calendar.ews.streaming import EwsStreamingNotifier
    from hybridge.calendar.interfaces import CalendarBackend

#: Alarm code of a refused impersonation password (EWS; ``calendar.sync`` raises it).
EWS_REJECTED_CODE = "impersonation_password_rejected"
#: Alarm code of a refused application client secret (Graph).
GRAPH_REJECTED_CODE = "client_secret_rejected"

#: Said to the admin (page, API, cloud portal) when Exchange on premises answers 401.
REJECTED_ALARM = (
    "The impersonation password was rejected, often because it expired. Every mailbox is "
    "paused until the Exchange admin enters the current password (Exchange page: create a "
    "credential-entry link)."
)
#: Said when Microsoft Entra ID refuses the application's client secret (401
#: ``invalid_client``, e.g. AADSTS7000215). ``{id}`` is the configuration's id.
GRAPH_REJECTED_ALARM = (
    "The application's client secret was rejected by Microsoft Entra ID, often because it "
    "expired (client secrets have an expiry date: Entra ID, App registrations, Certificates "
    "& secrets). Every mailbox is paused until an admin adds a new client secret there and "
    "enters it on the connector: `hybridge connector calendar graph set --id {id} "
    "--secret-stdin`, or the Exchange page (/exchange/graph/{id})."
)

Record = ExchangeRecord | GraphRecord


def rejected_alarm(record: Record) -> str:
    """The alarm text for a refused credential of ``record``'s kind (no secret in it)."""
    if isinstance(record, GraphRecord):
        return GRAPH_REJECTED_ALARM.format(id=record.id)
    return REJECTED_ALARM


def rejected_code(record: Record) -> str:
    """The alarm code for a refused credential of ``record``'s kind."""
    return GRAPH_REJECTED_CODE if isinstance(record, GraphRecord) else EWS_REJECTED_CODE


def engine_alarm(record: Record, alarm: Alarm) -> Alarm:
    """The engine's pause alarm (``alarm``) as the admin sees it for ``record``'s kind.

    The engine's own message (the server's words) goes last, in parentheses, so that the
    control channel's 500-character cut loses the server's detail before the remedy.
    """
    code = rejected_code(record) if alarm.code == EWS_REJECTED_CODE else alarm.code
    return Alarm(code, f"{rejected_alarm(record)} ({alarm.message})")


def credential_of(record: Record) -> object | None:
    """The stored credential's metadata (never its value), or None when there is none."""
    return record.client_secret if isinstance(record, GraphRecord) else record.password


def missing_credential(record: Record) -> str:
    """What a configuration without its credential lacks, in the admin's words."""
    return "client secret" if isinstance(record, GraphRecord) else "impersonation password"


def fingerprint_of(record: Record) -> tuple[str, ...] | None:
    """What makes a running engine stale (see ``calendar_settings.fingerprint``)."""
    if not isinstance(record, GraphRecord):
        return fingerprint(record)
    secret = record.client_secret
    if secret is None:
        return None
    return (
        "graph",
        record.id,
        record.updated_at.isoformat(),
        str(secret.version),
        secret.set_at.isoformat(),
    )


@dataclass(frozen=True)
class EngineBackend:
    """A backend ready for the engine, its push notifier (EWS streaming) and its endpoint."""

    backend: CalendarBackend
    notifier: EwsStreamingNotifier | None
    endpoint: str


def build_engine_backend(
    record: Record,
    *,
    settings: CalendarSettings,
    store: TrustStore,
    vault: Vault,
    exchange: ExchangeService,
) -> EngineBackend:
    """Build the backend for ``record`` from its credential in the vault.

    Raises ``CalendarError`` when the credential is gone or Autodiscover finds no EWS URL;
    ``HybridgeError``/``OSError``/``ssl.SSLError`` from building TLS contexts pass through.
    """
    if isinstance(record, GraphRecord):
        # No notifier: Graph change notifications need a public HTTPS webhook, which an
        # on-premises connector does not have; the engine polls (sync_poll).
        return EngineBackend(graph_backend(record, exchange), None, record.config.graph_url)
    ews = ews_backend(record, store=store, vault=vault, exchange=exchange)
    notifier: EwsStreamingNotifier | None = None
    if settings.streaming:
        from hybridge.calendar.ews.streaming import EwsStreamingNotifier

        notifier = EwsStreamingNotifier(ews)
    return EngineBackend(ews, notifier, ews.ews_url)


def graph_backend(record: GraphRecord, exchange: ExchangeService) -> CalendarBackend:
    """The Graph backend of ``record``; raises ``CalendarError`` if its secret is gone."""
    # Imported here: msal and httpx cost at import, and most connector starts never sync.
    from hybridge.calendar.graph import GraphBackend

    secret = exchange.graph.stored_secret(record.id)
    if secret is None:
        raise CalendarError(f"the client secret of {record.config.display_name!r} is gone")
    # Verified by the platform trust store only (DESIGN.md §3 invariant 1).
    context = exchange.graph.ssl_context()
    return GraphBackend.from_settings(record.config.graph_settings(secret), context)


def ews_backend(
    record: ExchangeRecord, *, store: TrustStore, vault: Vault, exchange: ExchangeService
) -> EwsBackend:
    """The EWS backend of ``record``; raises ``CalendarError`` if its password is gone or
    Autodiscover finds no EWS URL."""
    # Imported here: exchangelib costs ~1 s, and most connector starts never sync.
    from hybridge.calendar.ews.backend import EwsBackend

    ref = vault.find(PASSWORD_PURPOSE, record.id)
    if ref is None:
        raise CalendarError(f"the password of {record.config.display_name!r} is gone")
    password = vault.get(ref)
    config = record.config
    context = ews_ssl_context(store, config)
    ews_url = config.ews_url
    if ews_url is None:
        # Autodiscover finds the EWS URL; the connection test does exactly that.
        result = exchange.run_test(config, password)
        if not result.ok or not result.ews_url:
            raise CalendarError(f"Autodiscover did not find EWS: {result.message}")
        ews_url = result.ews_url
    return EwsBackend(
        config.ews_settings(), password.reveal_text(), ssl_context=context, ews_url=ews_url
    )
