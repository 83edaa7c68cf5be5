"""The Exchange Online (Graph) configuration value and its migration, on real SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from hybridge.connector.exchange_errors import ExchangeConfigInvalid
from hybridge.connector.exchange_graph_config import GraphConfig, graph_configs_table
from hybridge.storage.db import alembic_config, sqlite_url, upgrade

TENANT = "8F6B2C1E-3D4A-4B5C-9E7F-0A1B2C3D4E5F"
CLIENT = "3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c"


def _config(**kw: object) -> GraphConfig:
    base: dict[str, object] = {
        "display_name": " Contoso Online ",
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "test_mailbox": "alice@contoso.test",
    }
    base.update(kw)
    return GraphConfig(**base)  # type: ignore[arg-type]


def test_defaults_to_the_microsoft_cloud_and_normalises() -> None:
    config = _config()
    assert config.display_name == "Contoso Online"
    assert config.tenant_id == TENANT.lower()
    assert config.authority_host == "https://login.microsoftonline.com"
    assert config.graph_url == "https://graph.microsoft.com/v1.0"
    other = _config(
        authority_host="https://127.0.0.1:8443/", graph_url="https://127.0.0.1:8443/v1.0/"
    )
    assert (other.authority_host, other.graph_url) == (
        "https://127.0.0.1:8443",
        "https://127.0.0.1:8443/v1.0",
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tenant_id": "contoso"}, "tenant_id 'contoso' must be the directory (tenant) id"),
        ({"client_id": "app"}, "client_id 'app' must be the application (client) id"),
        ({"test_mailbox": "alice"}, "test_mailbox 'alice' is not an address"),
        (
            {"authority_host": "http://login.test"},
            "authority_host 'http://login.test' must be an https:// URL",
        ),
        ({"graph_url": "https://g.test/v1.0?x=1"}, "must be an https:// URL with a host"),
        ({"display_name": ""}, "display name '' is not accepted"),
        ({"tenant_id": 5}, "tenant_id 5 must be text"),
    ],
)
def test_refuses_bad_fields_quoting_them(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ExchangeConfigInvalid) as info:
        _config(**fields)
    assert message in str(info.value)


def test_from_mapping_refuses_a_secret_among_the_fields() -> None:
    # The secret travels beside the configuration, never in it (it would be stored as is).
    with pytest.raises(ExchangeConfigInvalid, match=r"unknown fields \['client_secret'\]"):
        GraphConfig.from_mapping(
            {
                "display_name": "C",
                "tenant_id": TENANT,
                "client_id": CLIENT,
                "test_mailbox": "a@b.test",
                "client_secret": "x",
            }
        )
    with pytest.raises(ExchangeConfigInvalid, match="client_id is required"):
        GraphConfig.from_mapping(
            {"display_name": "C", "tenant_id": TENANT, "test_mailbox": "a@b.c"}
        )


def test_endpoint_names_where_the_secret_goes() -> None:
    assert _config().endpoint() != _config(authority_host="https://evil.test").endpoint()
    assert _config().endpoint() == _config(display_name="Renamed").endpoint()


def test_migration_matches_the_table_and_downgrades(tmp_path: Path) -> None:
    engine = sa.create_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine, "node", "0010_exchange_graph")
    columns = {c["name"] for c in sa.inspect(engine).get_columns(graph_configs_table.name)}
    assert columns == set(graph_configs_table.c.keys())
    cfg = alembic_config("node")
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0009_traversal_listener")
    remaining = set(sa.inspect(engine).get_table_names())
    assert graph_configs_table.name not in remaining
    assert "exchange_configs" in remaining
    engine.dispose()
