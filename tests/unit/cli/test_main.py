from __future__ import annotations

import subprocess
import sys

from hybridge import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridge", *args], capture_output=True, text=True, timeout=60
    )


def test_version_prints_and_exits_zero() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"hybridge {__version__}"


def test_unknown_command_is_usage_error() -> None:
    result = run("no-such-command")
    assert result.returncode == 2
    assert "no-such-command" in result.stderr
    assert "Traceback" not in result.stderr
