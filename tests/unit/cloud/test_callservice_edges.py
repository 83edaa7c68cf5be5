"""Organisations' edges in the cloud database (real SQLite, migrated)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridge.cloud.callservice_edges import (
    EdgeAddress,
    OrgEdge,
    list_org_edges,
    org_edge_at,
    org_edge_of,
    remove_org_edge,
    set_org_edge,
)
from hybridge.cloud.callservice_errors import OrgEdgeError, UnknownOrgEdge
from hybridge.cloud.orgs import get_or_create_organisation
from hybridge.storage.db import Database, open_database, sqlite_url

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = open_database(sqlite_url(tmp_path / "cloud.db"), "cloud")
    with db.transaction() as session:
        get_or_create_organisation(session, "Acme", NOW)
        get_or_create_organisation(session, "Globex", NOW)
    yield db
    db.dispose()


def test_set_find_replace_and_remove(database: Database) -> None:
    with database.transaction() as db:
        edge = set_org_edge(db, "Acme", "Edge.Acme.Example", "127.0.0.1:5062", actor="t", now=NOW)
    assert edge.subject_name == "edge.acme.example"  # normalised (RFC 4343: case-insensitive)
    with database.transaction() as db:
        assert org_edge_of(db, "Acme") == edge
        assert org_edge_at(db, "127.0.0.1:5062") == edge
        replaced = set_org_edge(db, "Acme", "edge2.acme.example", None, actor="t", now=NOW)
        assert list_org_edges(db) == [replaced]
        assert remove_org_edge(db, "Acme", actor="t", now=NOW) == replaced
        assert list_org_edges(db) == []


def test_unknown_organisation_and_missing_edge_are_named(database: Database) -> None:
    with database.transaction() as db:
        with pytest.raises(
            UnknownOrgEdge, match=r"no organisation is called 'Initech'; known: 'Acme', 'Globex'"
        ):
            set_org_edge(db, "Initech", "edge.example", None, actor="t", now=NOW)
        with pytest.raises(UnknownOrgEdge, match=r"organisation 'Globex' has no edge configured"):
            org_edge_of(db, "Globex")
        with pytest.raises(UnknownOrgEdge, match=r"no organisation has an edge at '127.0.0.1:1'"):
            org_edge_at(db, "127.0.0.1:1")


def test_two_organisations_at_one_address_are_ambiguous(database: Database) -> None:
    with database.transaction() as db:
        set_org_edge(db, "Acme", "edge.acme.example", "10.0.0.1:5062", actor="t", now=NOW)
        set_org_edge(db, "Globex", "edge.globex.example", "10.0.0.1:5062", actor="t", now=NOW)
        with pytest.raises(
            UnknownOrgEdge, match=r"2 organisations have an edge at '10.0.0.1:5062'"
        ):
            org_edge_at(db, "10.0.0.1:5062")


@pytest.mark.parametrize("name", ["*.acme.example", "edge acme", "edge\x00.acme.example", ""])
def test_subject_names_that_cannot_be_dns_names_are_refused(name: str) -> None:
    with pytest.raises(OrgEdgeError, match=r"edge subject name .* is not usable"):
        OrgEdge("id", "Acme", name)


@pytest.mark.parametrize(
    ("text", "message"),
    [("host:http", "has port 'http'"), ("h:0", "is not 1..65535"), ("bad_host:1", "neither"),
     ("[::1", "is not '\\[ipv6\\]:port'")],
)  # fmt: skip
def test_bad_addresses_are_refused(text: str, message: str) -> None:
    with pytest.raises(OrgEdgeError, match=message):
        EdgeAddress.parse(text)


def test_addresses_parse() -> None:
    assert EdgeAddress.parse("edge.example") == EdgeAddress("edge.example", 5062)
    assert str(EdgeAddress.parse("[::1]:7000")) == "[::1]:7000"
