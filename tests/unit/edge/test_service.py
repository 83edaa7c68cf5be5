"""The zone store on a real SQLite database (the edge's node database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridge.core.tlsverify import CnRule
from hybridge.edge.errors import ZoneConflict, ZoneNotFound
from hybridge.edge.service import open_zone_store
from hybridge.edge.zones import PeerAddress, Zone, ZoneKind
from hybridge.truststore import open_trust_store

CLOUD = Zone(
    "cloud",
    ZoneKind.DNS,
    "callservice.example.test",
    cn_rule=CnRule.NEVER,
    wildcards=True,
    peer=PeerAddress.parse("callservice.example.test:5062"),
)
CONNECTOR = Zone("connector", ZoneKind.TRAVERSAL, "connector.example.test")


def test_zones_round_trip_and_survive_reopening(tmp_path: Path) -> None:
    with open_zone_store(tmp_path) as store:
        store.add(CONNECTOR, actor="test")
        store.add(CLOUD, actor="test")
    with open_zone_store(tmp_path) as store:
        assert store.list() == (CLOUD, CONNECTOR)  # DNS zones first
        assert store.get("cloud") == CLOUD


def test_changes_are_audited_in_the_shared_log(tmp_path: Path) -> None:
    with open_zone_store(tmp_path) as store:
        store.add(CLOUD, actor="cli:alice")
        store.remove("cloud", actor="cli:bob")
    with open_trust_store(tmp_path) as trust:
        entries = trust.audit_log()
    actions = [(e.action, e.actor) for e in entries]
    assert ("edge.zone_add", "cli:alice") in actions
    assert ("edge.zone_remove", "cli:bob") in actions


def test_duplicate_name_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    with open_zone_store(tmp_path) as store:
        store.add(CLOUD, actor="test")
        other = Zone("cloud", ZoneKind.DNS, "other.example.test")
        with pytest.raises(ZoneConflict, match="a zone named 'cloud' exists"):
            store.add(other, actor="test")
        assert store.list() == (CLOUD,)


def test_second_traversal_zone_is_refused(tmp_path: Path) -> None:
    with open_zone_store(tmp_path) as store:
        store.add(CONNECTOR, actor="test")
        with pytest.raises(ZoneConflict, match="an edge has one traversal zone"):
            store.add(Zone("second", ZoneKind.TRAVERSAL, "c2.example.test"), actor="test")


def test_unknown_zone_is_reported(tmp_path: Path) -> None:
    with open_zone_store(tmp_path) as store:
        with pytest.raises(ZoneNotFound, match="no zone named 'nope'"):
            store.get("nope")
        with pytest.raises(ZoneNotFound, match="no zone named 'nope'"):
            store.remove("nope", actor="test")
