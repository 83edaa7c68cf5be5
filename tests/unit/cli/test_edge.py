"""``hybridge edge zone add/list/show/remove`` and ``serve``'s refusals, on a real data dir."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hybridge.cli.main import app


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["edge", *args])
    return result.exit_code, result.stdout, result.stderr


def test_zone_add_list_show_remove_round_trip(tmp_path: Path) -> None:
    d = str(tmp_path)
    code, out, _ = run("zone", "add", "webex", "--preset", "webex", "--peer",
                       "callservice.webex.com:5062", "--data-dir", d, "--json")  # fmt: skip
    assert code == 0
    assert json.loads(out) == {
        "name": "webex",
        "kind": "dns",
        "tls_verify_mode": "on",
        "subject_name": "callservice.webex.com",
        "cn_rule": "when_no_san",
        "wildcards": False,
        "peer": "callservice.webex.com:5062",
    }
    code, out, _ = run("zone", "add", "connector", "--kind", "traversal", "--subject-name",
                       "Connector.Example.Test", "--data-dir", d)  # fmt: skip
    assert code == 0 and "connector.example.test" in out
    code, out, _ = run("zone", "list", "--data-dir", d, "--json")
    assert [z["name"] for z in json.loads(out)] == ["webex", "connector"]
    code, out, _ = run("zone", "show", "connector", "--data-dir", d)
    assert code == 0 and "traversal" in out and "connector.example.test" in out
    code, out, _ = run("zone", "remove", "webex", "--data-dir", d, "--json")
    assert code == 0 and json.loads(out)["removed"]["name"] == "webex"
    code, out, _ = run("zone", "list", "--data-dir", d, "--json")
    assert [z["name"] for z in json.loads(out)] == ["connector"]


def test_zone_add_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    d = str(tmp_path)
    code, _, err = run("zone", "add", "cloud", "--subject-name", "*.example.com", "--data-dir", d)
    assert code == 2 and "no wildcard" in err and err.count("\n") == 1
    code, _, err = run("zone", "add", "cloud", "--data-dir", d)
    assert code == 2 and "give either a subject name or a preset" in err
    code, _, err = run("zone", "add", "cloud", "--subject-name", "a.example", "--peer",
                       "a.example:http", "--data-dir", d)  # fmt: skip
    assert code == 2 and "has port 'http'" in err
    code, _, err = run("zone", "show", "nope", "--data-dir", d)
    assert code == 2 and "no zone named 'nope'" in err
    code, out, _ = run("zone", "list", "--data-dir", d, "--json")
    assert json.loads(out) == []


def test_serve_refuses_to_start_without_anchors_or_zones(tmp_path: Path) -> None:
    d = str(tmp_path)
    code, _, err = run("serve", "--data-dir", d)
    assert code == 2 and "trust store" in err and "is empty" in err
