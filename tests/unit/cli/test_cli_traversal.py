"""``hybridge connector traversal set/show/clear``: real data directory, real vault, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

import certs
from hybridge.cli.main import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["connector", "traversal", *args])
    return result.exit_code, result.stdout, result.stderr


def _files(tmp_path: Path, *, matching: bool = True) -> tuple[Path, Path]:
    root = certs.build("Traversal CLI Root")
    key = certs.new_key("ec")
    leaf = certs.build("connector.example.test", issuer=root, is_ca=False, key=key)
    stored = key if matching else certs.new_key("ec")
    cert_file = tmp_path / "traversal.pem"
    cert_file.write_bytes(leaf.pem)
    key_file = tmp_path / "traversal.key"
    key_file.write_bytes(
        stored.private_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


BASE = (
    "--edge", "edge.example.test:7001", "--edge-name", "edge.example.test",
    "--premises", "sip:pbx.example.test:5061;transport=tls",
)  # fmt: skip


def test_set_show_clear_with_json_and_exit_codes(tmp_path: Path) -> None:
    data = str(tmp_path / "connector")
    code, out, err = _run("show", "--data-dir", data, "--json")
    assert code == 1 and json.loads(out) == {"configured": False, "config": None}
    cert_file, key_file = _files(tmp_path)
    code, out, err = _run(
        "set", *BASE, "--cert", str(cert_file), "--key", str(key_file), "--keepalive", "15",
        "--data-dir", data, "--json",
    )  # fmt: skip
    assert code == 0, err
    view = json.loads(out)["config"]
    assert view["edge"] == "edge.example.test:7001"
    assert view["premises"] == "sip:pbx.example.test:5061;transport=tls"
    assert view["keepalive_interval"] == 15.0
    assert view["certificate"]["subject"].startswith("CN=connector.example.test")
    code, out, _ = _run("show", "--data-dir", data)
    assert code == 0 and "edge name      edge.example.test" in out
    assert "PRIVATE KEY" not in out
    db = (tmp_path / "connector").glob("*.db")
    assert all(b"PRIVATE KEY" not in f.read_bytes() for f in db)
    code, out, _ = _run("clear", "--data-dir", data, "--json")
    assert code == 0 and json.loads(out) == {"removed": True}
    code, out, _ = _run("clear", "--data-dir", data)
    assert code == 1 and "nothing to remove" in out


def test_set_refuses_a_bad_premises_uri_with_exit_2(tmp_path: Path) -> None:
    data = str(tmp_path / "connector")
    code, _, err = _run(
        "set", "--edge", "edge.example.test", "--edge-name", "edge.example.test",
        "--premises", "sip:pbx.example.test;transport=udp", "--data-dir", data,
    )  # fmt: skip
    assert code == 2
    assert "has parameter 'transport=udp'; only transport=tcp or transport=tls" in err
    assert _run("show", "--data-dir", data)[0] == 1


def test_set_refuses_a_key_that_does_not_match(tmp_path: Path) -> None:
    data = str(tmp_path / "connector")
    cert_file, key_file = _files(tmp_path, matching=False)
    code, _, err = _run(
        "set", *BASE, "--cert", str(cert_file), "--key", str(key_file), "--data-dir", data
    )
    assert code == 2
    assert "does not belong to the traversal certificate" in err
    assert "PRIVATE" not in err
    assert _run("show", "--data-dir", data)[0] == 1


def test_set_refuses_a_missing_key_file(tmp_path: Path) -> None:
    data = str(tmp_path / "connector")
    cert_file, _ = _files(tmp_path)
    missing = tmp_path / "nope.key"
    code, _, err = _run(
        "set", *BASE, "--cert", str(cert_file), "--key", str(missing), "--data-dir", data
    )
    assert code == 2
    assert f"cannot read the key file {str(missing)!r}" in err
