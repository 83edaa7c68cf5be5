"""The Exchange configuration value, its migration, and the link store on real SQLite."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from hybridge.connector.credential_link import CredentialLinks, links_table
from hybridge.connector.exchange_config import ExchangeConfig, config_values, configs_table
from hybridge.connector.exchange_errors import (
    ExchangeConfigInvalid,
    LinkCsrfRejected,
    LinkExpired,
    LinkNotFound,
    LinkUsed,
    LinkWrongConfiguration,
)
from hybridge.storage.db import alembic_config, open_database, sqlite_url, upgrade

URL = "https://mail.contoso.test/EWS/Exchange.asmx"


def _config(**kw: object) -> ExchangeConfig:
    base: dict[str, object] = {
        "display_name": " Contoso ",
        "username": "CONTOSO\\svc",
        "test_mailbox": "room1@contoso.test",
        "ews_url": URL,
    }
    base.update(kw)
    return ExchangeConfig(**base)  # type: ignore[arg-type]


def test_accepts_down_level_and_upn_and_normalises() -> None:
    config = _config(redirect_hosts=("Autodiscover.Contoso.TEST.", "autodiscover.contoso.test"))
    assert config.display_name == "Contoso"
    assert config.redirect_hosts == ("autodiscover.contoso.test",)
    assert _config(username="svc@contoso.test").username == "svc@contoso.test"
    auto = _config(ews_url=None, autodiscover_email="room1@contoso.test")
    assert auto.ews_settings().autodiscover_email == "room1@contoso.test"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"username": "svc"}, "username 'svc' must be DOMAIN\\user or user@domain"),
        ({"username": "A\\B\\C"}, "username 'A\\\\B\\\\C' must be DOMAIN\\user"),
        ({"ews_url": "http://mail.contoso.test/EWS"}, "must be an https:// URL"),
        ({"ews_url": None}, "set exactly one of ews_url and autodiscover_email"),
        ({"autodiscover_email": "a@b.test"}, "set exactly one of ews_url and autodiscover_email"),
        ({"auth": "Digest"}, "authentication 'Digest' is not accepted"),
        ({"display_name": ""}, "display name '' is not accepted"),
        ({"display_name": "x" * 101}, "expected 1 to 100 characters"),
        ({"redirect_hosts": ("evil.test/x",)}, "'evil.test/x' is not a DNS name"),
        ({"verify_tls": "no"}, "verify_tls 'no' must be true or false"),
        ({"test_mailbox": "room1"}, "test_mailbox 'room1' is not an address"),
    ],
)
def test_refuses_bad_fields_quoting_them(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ExchangeConfigInvalid) as info:
        _config(**fields)
    assert message in str(info.value)


def test_from_mapping_refuses_unknown_fields() -> None:
    with pytest.raises(ExchangeConfigInvalid, match=r"unknown fields \['password'\]"):
        ExchangeConfig.from_mapping(
            {"display_name": "C", "username": "C\\s", "test_mailbox": "a@b.test", "password": "x"}
        )


def test_migration_matches_the_tables_and_downgrades(tmp_path: Path) -> None:
    engine = sa.create_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine, "node", "0005_exchange")
    inspector = sa.inspect(engine)
    for table in (configs_table, links_table):
        assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.c.keys())
    cfg = alembic_config("node")
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0004_edge")
    remaining = set(sa.inspect(engine).get_table_names())
    assert not {"exchange_configs", "exchange_credential_links"} & remaining
    assert "audit_log" in remaining
    engine.dispose()


class _Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def test_link_store_rules(tmp_path: Path) -> None:
    database = open_database(sqlite_url(tmp_path / "node.db"), "node")
    clock = _Clock()
    links = CredentialLinks(database, clock)
    with database.transaction() as db:
        for config_id, name in (("a" * 32, "A"), ("b" * 32, "B")):
            db.execute(
                sa.insert(configs_table).values(
                    id=config_id,
                    **config_values(_config(display_name=name)),
                    created_at=clock.now,
                    created_by="t",
                    updated_at=clock.now,
                    updated_by="t",
                )
            )
    try:
        issued = links.create("a" * 32, actor="web:admin")
        assert issued.token not in repr(issued)
        link = links.open("a" * 32, issued.token)
        with pytest.raises(LinkWrongConfiguration):
            links.open("b" * 32, issued.token)
        with pytest.raises(LinkNotFound):
            links.open("a" * 32, issued.token + "x")
        link.check_csrf("nonce", link.csrf_token("nonce"))
        with pytest.raises(LinkCsrfRejected, match="wrong"):
            link.check_csrf("other nonce", link.csrf_token("nonce"))
        with pytest.raises(LinkCsrfRejected, match="missing"):
            link.check_csrf(None, link.csrf_token("nonce"))
        links.consume(link, used_from="127.0.0.1", username="CONTOSO\\svc")
        with pytest.raises(LinkUsed):
            links.consume(link, used_from="127.0.0.1", username="CONTOSO\\svc")
        with pytest.raises(LinkUsed):
            links.open("a" * 32, issued.token)
        late = links.create("a" * 32, actor="web:admin")
        clock.now += dt.timedelta(hours=24)
        with pytest.raises(LinkExpired, match="expired on 2026-11-28 12:00 UTC"):
            links.open("a" * 32, late.token)
    finally:
        database.dispose()
