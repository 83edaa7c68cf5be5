"""``hybridge demo``: the guided trust store tour runs end to end and cleans up after itself."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from typer.testing import CliRunner

from hybridge.cli.main import app


def test_demo_tour_runs_every_step_and_removes_its_data_dir() -> None:
    # Wide enough that Rich does not wrap the sentences the test looks for.
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["demo"])
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    for step in range(1, 11):
        assert f"{step}. " in out
    assert re.search(r"The connector ships \d{3} bootstrap roots", out)
    assert "3 added" not in out  # the all-or-nothing refusal added nothing
    assert "refused: nothing was added: 1 certificate refused:" in out
    assert "anchors before: 3, after: 3 (unchanged)" in out
    assert "cloud set 1: 1 added, 0 removed; 1 already manual" in out
    assert "is managed by the cloud" in out
    assert "exit status 1 (2 anchors need attention)" in out
    assert "4 anchors (manual + cloud), no bootstrap root" in out
    data_dir = re.search(r"data directory: (\S+) \(temporary\)", out.replace("\n", " "))
    assert data_dir
    assert not Path(data_dir.group(1)).exists()


def test_demo_keep_leaves_the_data_dir() -> None:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["demo", "--keep"])
    assert result.exit_code == 0
    kept = re.search(r"kept (\S+);", result.stdout)
    assert kept
    try:
        assert (Path(kept.group(1)) / "connector" / "trust-bundle.pem").is_file()
    finally:
        shutil.rmtree(kept.group(1))
