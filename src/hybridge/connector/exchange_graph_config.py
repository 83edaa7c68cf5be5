"""An Exchange Online (Microsoft Graph) configuration: the value, its table, its record.

``GraphConfig`` holds what the connector admin sets (display name, tenant id, application
(client) id, test mailbox, authority and Graph URLs). It holds no secret: the client secret
is a vault secret, purpose :data:`SECRET_PURPOSE`, record = the configuration id.
``GraphRecord.public_view`` is the one shape pages, the API, the CLI and the export show:
for the secret it gives "set on <date> by <who>" and the version, never a value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from hybridge.calendar.errors import CalendarSettingsError
from hybridge.connector.exchange_common import (
    bookkeeping_view,
    check_display_name,
    check_mapping,
    secret_view,
)
from hybridge.connector.exchange_config import metadata
from hybridge.connector.exchange_errors import ExchangeConfigInvalid
from hybridge.vault import Secret, SecretMetadata
from hybridge.vault.models import UtcDateTime

if TYPE_CHECKING:
    from hybridge.calendar.graph import GraphSettings

SECRET_PURPOSE = "exchange.graph_client_secret"  # noqa: S105 - a vault purpose name
#: Duplicated from hybridge.calendar.graph.settings so that importing this module (app
#: start, every CLI command) does not import msal and httpx.
PUBLIC_AUTHORITY_HOST = "https://login.microsoftonline.com"
PUBLIC_GRAPH_URL = "https://graph.microsoft.com/v1.0"

graph_configs_table = sa.Table(
    "exchange_graph_configs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("display_name", sa.String(100), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("test_mailbox", sa.String(320), nullable=False),
    sa.Column("authority_host", sa.String(2000), nullable=False),
    sa.Column("graph_url", sa.String(2000), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
    sa.Column("last_test_code", sa.String(32), nullable=True),
    sa.Column("last_test_at", UtcDateTime, nullable=True),
)


@dataclass(frozen=True)
class GraphConfig:
    """What the connector admin configures for one Exchange Online tenant (no secret).

    Raises:
        ExchangeConfigInvalid: a field is malformed (the message quotes it).
    """

    display_name: str
    tenant_id: str
    client_id: str
    test_mailbox: str
    authority_host: str = PUBLIC_AUTHORITY_HOST
    graph_url: str = PUBLIC_GRAPH_URL

    def __post_init__(self) -> None:
        object.__setattr__(self, "display_name", check_display_name(self.display_name))
        for key in ("tenant_id", "client_id", "test_mailbox", "authority_host", "graph_url"):
            value = getattr(self, key)
            if not isinstance(value, str):
                raise ExchangeConfigInvalid(f"{key} {value!r} must be text")
            object.__setattr__(self, key, value.strip() or getattr(GraphConfig, key, ""))
        # GraphSettings holds the rules (GUIDs, https only, address); a placeholder secret
        # lets it check them here, where no secret is at hand. It is never used.
        settings = self.graph_settings(Secret(b"placeholder"))
        object.__setattr__(self, "tenant_id", settings.tenant_id)
        object.__setattr__(self, "client_id", settings.client_id)
        object.__setattr__(self, "authority_host", settings.authority_host)
        object.__setattr__(self, "graph_url", settings.graph_url)

    def graph_settings(self, client_secret: Secret, timeout_seconds: float = 20.0) -> GraphSettings:
        """The backend's settings with ``client_secret``. Raises ``ExchangeConfigInvalid``."""
        from hybridge.calendar.graph import GraphSettings

        try:
            return GraphSettings(
                tenant_id=self.tenant_id,
                client_id=self.client_id,
                test_mailbox=self.test_mailbox,
                client_secret=client_secret,
                authority_host=self.authority_host,
                graph_url=self.graph_url,
                timeout_seconds=timeout_seconds,
            )
        except CalendarSettingsError as exc:
            raise ExchangeConfigInvalid(str(exc)) from exc

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> GraphConfig:
        """Build from the API's / CLI's JSON shape. Raises ``ExchangeConfigInvalid``."""
        known = {
            "display_name",
            "tenant_id",
            "client_id",
            "test_mailbox",
            "authority_host",
            "graph_url",
        }
        check_mapping(data, known, ("display_name", "tenant_id", "client_id", "test_mailbox"))
        return cls(
            display_name=data["display_name"],
            tenant_id=data["tenant_id"],
            client_id=data["client_id"],
            test_mailbox=data["test_mailbox"],
            authority_host=data.get("authority_host") or PUBLIC_AUTHORITY_HOST,
            graph_url=data.get("graph_url") or PUBLIC_GRAPH_URL,
        )

    def endpoint(self) -> tuple[str, ...]:
        """What decides where the client secret (and the tokens it buys) go."""
        return (self.authority_host, self.tenant_id, self.client_id, self.graph_url)


@dataclass(frozen=True)
class GraphRecord:
    """A stored Graph configuration, who changed it, and the secret's metadata (no value)."""

    id: str
    config: GraphConfig
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime
    updated_by: str
    last_test_code: str | None
    last_test_at: dt.datetime | None
    client_secret: SecretMetadata | None

    def public_view(self) -> dict[str, Any]:
        """What pages, the API, the CLI and the export show; never the client secret."""
        c = self.config
        return {
            "id": self.id,
            "kind": "graph",
            "display_name": c.display_name,
            "tenant_id": c.tenant_id,
            "client_id": c.client_id,
            "test_mailbox": c.test_mailbox,
            "authority_host": c.authority_host,
            "graph_url": c.graph_url,
            "tls": {"enabled": True, "verify": True, "trust": "platform"},
            "client_secret": secret_view(self.client_secret),
        } | bookkeeping_view(self)
