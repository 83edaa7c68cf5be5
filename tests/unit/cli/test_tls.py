"""``hybridge tls verify`` as an admin runs it: real files, real verification.

Two tests run the installed entry point in a subprocess (wiring, exit statuses through
``main``); the others invoke the same Typer app in-process, which keeps the suite fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from certs import load_tlspki
from hybridge.cli.main import app

AT = "2026-06-01T12:00:00Z"
CLOUD = "callservice.example.com"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pki: Any = load_tlspki()
    directory = tmp_path_factory.mktemp("tlsverify")
    root = pki.make_ca("CLI Root")
    inter = pki.make_ca("CLI Intermediate", issuer=root)
    leaf = pki.make_leaf(inter, uris=[f"sip:{CLOUD}"], eku=[pki.SERVER_AUTH])
    cn_only = pki.make_leaf(inter, cn=CLOUD)
    paths = {
        "root": directory / "root.pem",
        "chain": directory / "chain.pem",
        "cn_only": directory / "cn-only.pem",
        "garbage": directory / "garbage.pem",
    }
    paths["root"].write_bytes(root.pem)
    paths["chain"].write_bytes(leaf.pem + inter.pem)
    paths["cn_only"].write_bytes(cn_only.pem + inter.pem)
    paths["garbage"].write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    return paths


def subprocess_hybridge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridge", *args], capture_output=True, text=True, timeout=60
    )


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def hybridge(*args: str) -> Outcome:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def test_verify_accepts_a_sip_uri_certificate(files: dict[str, Path]) -> None:
    result = subprocess_hybridge(
        "tls",
        "verify",
        str(files["chain"]),
        "--name",
        CLOUD,
        "--ca-file",
        str(files["root"]),
        "--at",
        AT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"accepted: {CLOUD} (san_uri)"


def test_verify_refuses_wrong_name_and_cn_off_with_json(files: dict[str, Path]) -> None:
    result = hybridge(
        "tls",
        "verify",
        str(files["cn_only"]),
        "--name",
        CLOUD,
        "--ca-file",
        str(files["root"]),
        "--at",
        AT,
        "--cn",
        "never",
        "--role",
        "client",
        "--json",
    )
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["reason"] == "name_mismatch"
    assert document["presented_names"] == [f"cn:{CLOUD}"]
    assert document["role"] == "client"
    assert [c["subject"] for c in document["chain"]][1] == "CN=CLI Intermediate"


def test_verify_expired_names_the_reason(files: dict[str, Path]) -> None:
    result = hybridge(
        "tls",
        "verify",
        str(files["chain"]),
        "--name",
        CLOUD,
        "--ca-file",
        str(files["root"]),
        "--at",
        "2027-01-01T00:00:00",
    )
    assert result.returncode == 1
    assert result.stdout.startswith("refused (expired): the peer's certificate")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "call service.example.com"], "is not a DNS host name"),
        (["--name", CLOUD, "--at", "yesterday"], "is not an ISO 8601 time"),
        (["--name", CLOUD, "--data-dir", "/nonexistent-dir"], "either --ca-file or --data-dir"),
    ],
)
def test_verify_bad_input_exits_two(files: dict[str, Path], args: list[str], message: str) -> None:
    result = hybridge("tls", "verify", str(files["chain"]), "--ca-file", str(files["root"]), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_unreadable_chain_exits_two(files: dict[str, Path]) -> None:
    result = hybridge(
        "tls", "verify", str(files["garbage"]), "--name", CLOUD, "--ca-file", str(files["root"])
    )
    assert result.returncode == 2
    assert "no readable certificate" in result.stderr


def test_verify_against_a_data_directory_trust_store(
    files: dict[str, Path], tmp_path: Path
) -> None:
    data_dir = tmp_path / "connector"
    added = hybridge("trust", "add", str(files["root"]), "--data-dir", str(data_dir))
    assert added.returncode == 0, added.stderr
    result = hybridge(
        "tls",
        "verify",
        str(files["chain"]),
        "--name",
        CLOUD,
        "--data-dir",
        str(data_dir),
        "--at",
        AT,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "accepted" in result.stdout
    empty = hybridge(
        "tls", "verify", str(files["chain"]), "--name", CLOUD, "--data-dir", str(tmp_path / "none")
    )
    assert empty.returncode == 2
    assert "does not exist" in empty.stderr
