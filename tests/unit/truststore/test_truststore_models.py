"""The node schema's trust-store tables: migration, constraints, UTC round trip."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError, StatementError

from hybridge.storage.db import alembic_config, open_database, sqlite_url, upgrade
from hybridge.truststore.models import AnchorRow, AuditRow


def test_migration_creates_the_tables_and_downgrades_cleanly(tmp_path: Path) -> None:
    engine = sa.create_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine, "node", "0001_truststore")
    assert {"anchors", "trust_state", "audit_log"} <= set(sa.inspect(engine).get_table_names())
    cfg = alembic_config("node")
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "base")
    assert not {"anchors", "trust_state", "audit_log"} & set(sa.inspect(engine).get_table_names())


@pytest.fixture
def session(tmp_path: Path):
    db = open_database(sqlite_url(tmp_path / "node.db"), "node")
    with db.sessions() as s:
        yield s
    db.dispose()


AT = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def anchor(**overrides: object) -> AnchorRow:
    values: dict[str, object] = {
        "fingerprint_sha256": "a" * 64,
        "der": b"\x30\x00",
        "source": "manual",
        "added_at": AT,
        "added_by": "t",
        "cloud_sequence": None,
    }
    values.update(overrides)
    return AnchorRow(**values)


@pytest.mark.parametrize(
    "overrides",
    [
        {"source": "bootstrap"},  # the bootstrap set never enters the database
        {"source": "cloud"},  # a cloud anchor without the sequence that installed it
        {"source": "manual", "cloud_sequence": 3},
        {"fingerprint_sha256": "abc"},
    ],
)
def test_constraints_refuse_inconsistent_rows(session, overrides: dict[str, object]) -> None:
    session.add(anchor(**overrides))
    with pytest.raises(IntegrityError, match="CHECK constraint failed"):
        session.commit()


def test_consistent_rows_are_accepted_and_times_come_back_as_utc(session) -> None:
    session.add(anchor())
    session.add(anchor(fingerprint_sha256="b" * 64, source="cloud", cloud_sequence=1))
    cest = dt.timezone(dt.timedelta(hours=2))
    session.add(AuditRow(at=AT.astimezone(cest), actor="t", action="x", added=["a"], removed=[]))
    session.commit()
    session.expire_all()
    row = session.get(AnchorRow, "a" * 64)
    assert row.added_at == AT and row.added_at.tzinfo is dt.UTC
    audit = session.scalars(sa.select(AuditRow)).one()
    assert audit.at == AT and audit.added == ["a"]


def test_naive_datetimes_are_refused(session) -> None:
    session.add(anchor(added_at=dt.datetime(2026, 6, 1, 12, 0)))
    with pytest.raises(StatementError, match="refusing a naive datetime"):
        session.commit()
