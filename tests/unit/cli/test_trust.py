"""``hybridge trust``: a few cases through the real ``python -m hybridge`` process (exit
statuses, no traceback, JSON shape), the rest through Typer's runner to stay fast."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import certs
from hybridge.cli.trust import trust_app
from hybridge.core.pki import fingerprint_sha256, load_certificates
from hybridge.truststore import open_trust_store

LIST_KEYS = {
    "fingerprint_sha256",
    "subject",
    "issuer",
    "serial",
    "not_before",
    "not_after",
    "source",
    "status",
    "key",
    "added_at",
}
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def der_of(path: Path) -> bytes:
    return load_certificates(path.read_bytes())[0].der


def hybridge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridge", *args], capture_output=True, text=True, timeout=60
    )


def run(*args: str):
    return CliRunner().invoke(trust_app, list(args))


@pytest.fixture
def data(tmp_path: Path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    root = certs.build("CLI Root", key=certs.new_key("ec"))
    baltimore = certs.real_root("baltimore-cybertrust-root.pem")
    leaf = certs.build("leaf.example", issuer=root, key=certs.new_key("ec"), is_ca=False)
    out = {}
    for name, data in {
        "root.pem": root.pem,
        "baltimore.pem": baltimore,
        "leaf.pem": leaf.pem,
        "empty.pem": b"",
    }.items():
        out[name] = tmp_path / name
        out[name].write_bytes(data)
    return out


# --- real process -------------------------------------------------------------------------


def test_process_list_json_and_check_exit_statuses(data: str, files: dict[str, Path]) -> None:
    added = run("add", str(files["root.pem"]), str(files["baltimore.pem"]), "--data-dir", data)
    assert added.exit_code == 0, added.stderr

    listed = hybridge("trust", "list", "--data-dir", data, "--json")
    assert listed.returncode == 0
    anchors = json.loads(listed.stdout)
    assert len(anchors) == 2
    for anchor in anchors:
        assert set(anchor) >= LIST_KEYS
        assert re.fullmatch(r"[0-9a-f]{64}", anchor["fingerprint_sha256"])
        for key in ("not_before", "not_after", "added_at"):
            assert ISO_Z.fullmatch(anchor[key]), anchor[key]
        assert anchor["source"] == "manual"
    baltimore = next(a for a in anchors if "Baltimore" in a["subject"])
    assert baltimore["status"] == "expired"
    assert baltimore["not_after"] == "2025-05-12T23:59:00Z"
    assert baltimore["key"] == "RSA 2048"

    # Baltimore is expired, so the check finds a problem: status 1, not a crash.
    checked = hybridge("trust", "check", "--data-dir", data)
    assert checked.returncode == 1
    assert "Traceback" not in checked.stderr


def test_process_bad_input_is_one_sentence_and_status_two(
    data: str, files: dict[str, Path]
) -> None:
    result = hybridge("trust", "add", str(files["empty.pem"]), "--data-dir", data)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"hybridge: nothing was added: 1 certificate refused: {files['empty.pem']}: the input "
        "is empty; expected PEM, DER or PKCS#7 certificates\n"
    )


# --- runner -------------------------------------------------------------------------------


def test_add_prints_each_fingerprint(data: str, files: dict[str, Path]) -> None:
    result = run("add", str(files["root.pem"]), "--data-dir", data)
    assert result.exit_code == 0
    fingerprint = fingerprint_sha256(der_of(files["root.pem"]))
    assert result.stdout.splitlines() == [
        f"added {fingerprint}  CN=CLI Root,O=Hybridge Tests,C=US",
        "1 added, 0 duplicates skipped",
    ]


def test_add_reports_duplicates(data: str, files: dict[str, Path]) -> None:
    run("add", str(files["root.pem"]), "--data-dir", data)
    result = run("add", str(files["root.pem"]), "--data-dir", data, "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["added"] == []
    assert [(d["file"], d["index"], d["already_in"]) for d in out["duplicates"]] == [
        (str(files["root.pem"]), 0, "manual")
    ]


def test_non_ca_refusal_names_the_option(data: str, files: dict[str, Path]) -> None:
    result = run("add", str(files["leaf.pem"]), "--data-dir", data)
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "not a CA certificate (basicConstraints does not say CA:TRUE); "
        "pass --allow-non-ca to add certificates that are not CAs\n"
    )
    assert run("add", str(files["leaf.pem"]), "--allow-non-ca", "--data-dir", data).exit_code == 0


def test_add_json_error_lists_the_rejects(data: str, files: dict[str, Path]) -> None:
    result = run(
        "add", str(files["root.pem"]), str(files["empty.pem"]), "--data-dir", data, "--json"
    )
    assert result.exit_code == 2
    body = json.loads(result.stdout)
    assert body["rejected"] == [
        {
            "file": str(files["empty.pem"]),
            "index": None,
            "reason": "the input is empty; expected PEM, DER or PKCS#7 certificates",
        }
    ]
    assert json.loads(run("list", "--data-dir", data, "--json").stdout) == []


def test_list_text_is_a_table_with_a_validity_column(data: str, files: dict[str, Path]) -> None:
    run("add", str(files["baltimore.pem"]), "--data-dir", data)
    result = run("list", "--data-dir", data)
    assert result.exit_code == 0
    header = result.stdout.splitlines()[2]
    for column in ("SHA-256", "Subject", "Source", "Status", "Key", "Validity"):
        assert column in header
    assert "2000-05-12 → 2025-05-12" in result.stdout
    assert "expired" in result.stdout


def test_list_of_an_empty_store_says_how_to_add(data: str) -> None:
    result = run("list", "--data-dir", data)
    assert result.stdout == "no anchors: add CA certificates with 'hybridge trust add FILE...'\n"


def test_show_by_prefix_text_json_and_pem(data: str, files: dict[str, Path]) -> None:
    run("add", str(files["root.pem"]), "--data-dir", data)
    der = der_of(files["root.pem"])
    prefix = fingerprint_sha256(der)[:6]

    text = run("show", prefix, "--data-dir", data)
    assert text.exit_code == 0
    assert "Subject              CN=CLI Root,O=Hybridge Tests,C=US" in text.stdout
    assert "Source               manual" in text.stdout

    shown = json.loads(run("show", prefix, "--data-dir", data, "--json", "--pem").stdout)
    assert shown["fingerprint_sha256"] == fingerprint_sha256(der)
    assert shown["is_ca"] is True
    assert shown["pem"] == files["root.pem"].read_text()

    pem = run("show", prefix, "--pem", "--data-dir", data)
    assert pem.stdout == files["root.pem"].read_text()


def test_show_ambiguous_prefix_lists_the_candidates(data: str, tmp_path: Path) -> None:
    bundle = tmp_path / "many.pem"
    bundle.write_bytes(b"".join(certs.build(f"Many {i}").pem for i in range(20)))
    run("add", str(bundle), "--data-dir", data)
    with open_trust_store(Path(data)) as store:
        fps = sorted(r.anchor.fingerprint_sha256 for r in store.list_anchors())
    first = next(f[0] for f in fps if sum(g[0] == f[0] for g in fps) > 1)
    candidates = [f for f in fps if f.startswith(first)]
    result = run("show", first, "--data-dir", data)
    assert result.exit_code == 2
    assert result.stderr == (
        f"hybridge: fingerprint prefix {first!r} matches {len(candidates)} anchors "
        f"({', '.join(candidates)}); give more hex digits\n"
    )


def test_show_unknown_fingerprint(data: str) -> None:
    result = run("show", "abcdef", "--data-dir", data)
    assert result.exit_code == 2
    assert result.stderr.startswith("hybridge: no manual or cloud anchor has a fingerprint")


def test_remove_manual_and_refuse_cloud(data: str, files: dict[str, Path]) -> None:
    run("add", str(files["root.pem"]), "--data-dir", data)
    cloud = certs.build("CLI Cloud CA", key=certs.new_key("ec"))
    with open_trust_store(Path(data)) as store:
        store.apply_cloud_set([cloud.der], actor="cloud", sequence=1)
    cloud_fp = fingerprint_sha256(cloud.der)

    refused = run("remove", cloud_fp, "--data-dir", data)
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"hybridge: anchor {cloud_fp} is managed by the cloud; it leaves the store when the "
        "cloud's CA list drops it, it cannot be removed by hand\n"
    )

    root_fp = fingerprint_sha256(der_of(files["root.pem"]))
    removed = run("remove", root_fp[:8], "--data-dir", data, "--json")
    assert removed.exit_code == 0
    assert json.loads(removed.stdout) == {"removed": [root_fp]}
    listed = json.loads(run("list", "--data-dir", data, "--json").stdout)
    assert [(a["fingerprint_sha256"], a["source"]) for a in listed] == [(cloud_fp, "cloud")]


def test_export_to_stdout_and_file(data: str, files: dict[str, Path], tmp_path: Path) -> None:
    run("add", str(files["root.pem"]), "--data-dir", data)
    printed = run("export", "--data-dir", data)
    assert printed.exit_code == 0
    assert printed.stdout == (Path(data) / "trust-bundle.pem").read_text()
    out = tmp_path / "exported.pem"
    written = run("export", "--output", str(out), "--data-dir", data)
    assert written.exit_code == 0
    assert out.read_text() == printed.stdout
    assert written.stderr == f"wrote 1 anchors to {out}\n"


def test_check_passes_then_warns_about_expiry(data: str, files: dict[str, Path]) -> None:
    run("add", str(files["root.pem"]), "--data-dir", data)  # valid until 2035
    ok = run("check", "--data-dir", data)
    assert ok.exit_code == 0
    assert ok.stdout.endswith("1 anchors, 0 with problems or expiring within 30 days\n")
    # certs.NOT_AFTER is 2035-01-01: a warning window that reaches it makes the check fail.
    far = run("check", "--warn-days", "5000", "--data-dir", data, "--json")
    assert far.exit_code == 1
    body = json.loads(far.stdout)
    assert body["ok"] is False
    assert body["anchors"][0]["warnings"]


def test_check_ignores_informational_warnings(data: str, tmp_path: Path) -> None:
    godaddy = tmp_path / "gd.pem"
    godaddy.write_bytes(certs.real_root("go-daddy-class-2-ca.pem"))  # serial 0: a warning
    run("add", str(godaddy), "--data-dir", data)
    result = run("check", "--data-dir", data)
    assert result.exit_code == 0, result.stdout
    assert "is not positive" in result.stdout


def test_check_rejects_a_negative_window(data: str) -> None:
    result = run("check", "--warn-days", "-1", "--data-dir", data)
    assert result.exit_code == 2


def test_data_dir_defaults_to_the_environment(tmp_path: Path, files: dict[str, Path]) -> None:
    env_dir = tmp_path / "from-env"
    result = CliRunner(env={"HYBRIDGE_DATA_DIR": str(env_dir)}).invoke(
        trust_app, ["add", str(files["root.pem"])]
    )
    assert result.exit_code == 0
    assert (env_dir / "trust-bundle.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 1
