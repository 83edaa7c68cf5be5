"""An edge whose node database is PostgreSQL: configured by the CLI, served by a real process.

The zones and the trust store go into a throw-away PostgreSQL database (tests/pgserver.py)
through ``--database-url`` and ``$HYBRIDGE_DATABASE_URL``; ``hybridge edge serve`` reads
them from there and admits the cloud peer they describe, and refuses one of another name.
The data directory never gets a SQLite file: nothing falls back to it silently.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

from edgekit import CLOUD, EDGE, Pki, SipPeer, client_ssl, launch_edge, request
from typer.testing import CliRunner

from hybridge.cli.main import app
from hybridge.core.sip import Response


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def _answered(port: int, pki: Pki, stem: str, name: str) -> bool:
    """True when an OPTIONS from a peer certified for ``name`` is answered 200."""
    try:
        peer = SipPeer.connect(port, client_ssl(pki, pki.leaf(stem, dns=[name])))
    except (ssl.SSLError, ConnectionError):
        return False
    try:
        peer.send(request("OPTIONS", "sip:127.0.0.1", branch=f"z9hG4bK{stem}", call_id=stem,
                          cseq=1))  # fmt: skip
        answer = peer.recv(timeout=5)
        return isinstance(answer, Response) and answer.status_code == 200
    except (ssl.SSLError, ConnectionError, OSError):
        return False  # TLS 1.3: the refusal arrives on the first read
    finally:
        peer.close()


def test_an_edge_configured_and_served_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    pki = Pki(tmp_path)
    data = tmp_path / "edge"
    d = str(data)
    code, _, err = cli("trust", "add", str(pki.root_file()), "--data-dir", d,
                       "--database-url", postgres_url)  # fmt: skip
    assert code == 0, err
    code, _, err = cli("edge", "zone", "add", "cloud", "--subject-name", CLOUD, "--data-dir", d,
                       env={"HYBRIDGE_DATABASE_URL": postgres_url})  # fmt: skip
    assert code == 0, err
    code, out, err = cli("edge", "zone", "list", "--data-dir", d, "--json",
                         "--database-url", postgres_url)  # fmt: skip
    assert code == 0, err
    assert [z["subject_name"] for z in json.loads(out)] == [CLOUD]

    edge_id = pki.leaf("edge", dns=[EDGE], ips=["127.0.0.1"])
    edge = launch_edge(data, edge_id, options=("--database-url", postgres_url), metrics=False)
    try:
        assert _answered(edge.cloud_port, pki, "cloud", CLOUD)
        # The twin: the same edge refuses a peer the PostgreSQL zone does not name.
        assert not _answered(edge.cloud_port, pki, "other", "other.example.test")
        edge.wait_line(
            r"peer certificate identity unacceptable: presented SAN "
            r"DNS:other\.example\.test; zone expects callservice\.example\.test"
        )
    finally:
        edge.stop()
    # Everything came from PostgreSQL: the data directory holds no SQLite database...
    assert not (data / "hybridge.db").exists()
    # ...and without the URL the same directory is another, empty, edge.
    code, out, _ = cli("edge", "zone", "list", "--data-dir", d, "--json")
    assert code == 0 and json.loads(out) == []
