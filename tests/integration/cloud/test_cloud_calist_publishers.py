"""Two CA-list publishers at once, on PostgreSQL (as cloud nodes share it) and on SQLite.

Publisher A takes its transaction as far as writing the next version and holds it open;
publisher B, in another thread and connection, must wait for A and then build on A's
version — never compute the same sequence, never publish a list without A's change.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from hybridge.cloud import calist
from hybridge.cloud.errors import CaListError
from hybridge.cloud.keys import CloudKeys
from hybridge.cloud.models import ca_list_version
from hybridge.storage.db import Database, open_database, sqlite_url

ISSUER = "https://cloud.acme.test"
#: How long B must stay blocked while A holds its transaction open.
BLOCKED_FOR = 0.7
TIMEOUT = 20


def _ca(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def keys() -> CloudKeys:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _ca("Connector CA")
    return CloudKeys(ca, ca_key, Ed25519PrivateKey.generate(), (ca,))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = sqlite_url(tmp_path / "cloud.db")
    database = open_database(url, "cloud")
    try:
        yield database
    finally:
        database.dispose()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _seed(database: Database, keys: CloudKeys) -> calist.CaListVersion:
    with database.transaction() as session:
        version = calist.seed_default(session, [_ca("Seed Root")], keys, ISSUER, _now())
    assert version is not None
    return version


def _race(
    database: Database,
    first: Callable[[sa.orm.Session], object],
    second: Callable[[sa.orm.Session], object],
    *,
    commit_first: bool = True,
) -> tuple[object, object]:
    """Run ``first`` in a transaction held open until ``second`` has had BLOCKED_FOR seconds
    to run in another thread; then end the first (commit or roll back). Returns both
    outcomes (a value or the exception raised)."""
    results: dict[str, object] = {}
    second_done = threading.Event()

    def run_second() -> None:
        try:
            with database.transaction() as session:
                results["second"] = second(session)
        except Exception as exc:
            results["second"] = exc
        finally:
            second_done.set()

    thread = threading.Thread(target=run_second, daemon=True)
    session = database.sessions()
    transaction = session.begin()
    try:
        results["first"] = first(session)
        thread.start()
        # B must wait for A: it cannot finish while A's transaction is open.
        assert not second_done.wait(BLOCKED_FOR), f"second publisher did not wait: {results}"
        if commit_first:
            transaction.commit()
        else:
            transaction.rollback()
    finally:
        session.close()
    assert second_done.wait(TIMEOUT), "second publisher still blocked after the first ended"
    thread.join(TIMEOUT)
    return results["first"], results["second"]


def _sequences(database: Database) -> list[int]:
    with database.transaction() as session:
        return list(session.execute(sa.select(ca_list_version.c.sequence)).scalars())


def test_second_publisher_waits_and_builds_on_the_first(
    database: Database, keys: CloudKeys
) -> None:
    seed = _seed(database, keys)
    ca_x, ca_y = _ca("Root X"), _ca("Root Y")
    first, second = _race(
        database,
        lambda s: calist.add_certificates(s, [ca_x], "a@acme.test", keys, ISSUER, _now()),
        lambda s: calist.add_certificates(s, [ca_y], "b@acme.test", keys, ISSUER, _now()),
    )
    assert isinstance(first, calist.CaListVersion), first
    assert isinstance(second, calist.CaListVersion), second
    assert (first.sequence, second.sequence) == (seed.sequence + 1, seed.sequence + 2)
    # B's list carries A's certificate: no lost update.
    assert second.fingerprints == (
        *seed.fingerprints,
        calist.fingerprint(ca_x),
        calist.fingerprint(ca_y),
    )
    assert sorted(_sequences(database)) == [1, 2, 3]


def test_a_retire_racing_an_upload_keeps_both_changes(database: Database, keys: CloudKeys) -> None:
    seed = _seed(database, keys)
    ca_x = _ca("Root X")
    _, second = _race(
        database,
        lambda s: calist.add_certificates(s, [ca_x], "a@acme.test", keys, ISSUER, _now()),
        lambda s: calist.retire(s, seed.fingerprints[0], "b@acme.test", keys, ISSUER, _now()),
    )
    assert isinstance(second, calist.CaListVersion), second
    assert second.sequence == seed.sequence + 2
    assert second.fingerprints == (calist.fingerprint(ca_x),)


def test_second_upload_of_the_same_certificate_sees_it_already_published(
    database: Database, keys: CloudKeys
) -> None:
    _seed(database, keys)
    ca_x = _ca("Root X")
    _, second = _race(
        database,
        lambda s: calist.add_certificates(s, [ca_x], "a@acme.test", keys, ISSUER, _now()),
        lambda s: calist.add_certificates(s, [ca_x], "b@acme.test", keys, ISSUER, _now()),
    )
    assert isinstance(second, CaListError)
    assert str(second) == "every uploaded certificate is already in the published list"
    assert sorted(_sequences(database)) == [1, 2]


def test_a_publisher_that_rolls_back_leaves_no_gap(database: Database, keys: CloudKeys) -> None:
    seed = _seed(database, keys)
    ca_x, ca_y = _ca("Root X"), _ca("Root Y")
    _, second = _race(
        database,
        lambda s: calist.add_certificates(s, [ca_x], "a@acme.test", keys, ISSUER, _now()),
        lambda s: calist.add_certificates(s, [ca_y], "b@acme.test", keys, ISSUER, _now()),
        commit_first=False,
    )
    assert isinstance(second, calist.CaListVersion), second
    assert second.sequence == seed.sequence + 1
    assert second.fingerprints == (*seed.fingerprints, calist.fingerprint(ca_y))


def test_two_clouds_seeding_at_once_publish_version_one_once(
    database: Database, keys: CloudKeys
) -> None:
    first, second = _race(
        database,
        lambda s: calist.seed_default(s, [_ca("Root A")], keys, ISSUER, _now()),
        lambda s: calist.seed_default(s, [_ca("Root B")], keys, ISSUER, _now()),
    )
    assert isinstance(first, calist.CaListVersion), first
    assert first.sequence == 1
    assert second is None
    assert _sequences(database) == [1]
