"""Helpers of the vault's integration tests: the real CLI in a subprocess.

A uniquely named module, since test modules cannot import from ``conftest``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PASSWORD = "Tr0ub4dor&3-vault-test"
KEY_VARIABLES = ("HYBRIDGE_MASTER_KEY", "HYBRIDGE_MASTER_KEY_COMMAND", "HYBRIDGE_MASTER_KEY_FILE")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any master-key setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    env.pop("HYBRIDGE_VAULT_TEST_CRASH_AT", None)
    env.update(extra or {})
    return env


def run_cli(
    data_dir: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``hybridge connector vault ARGS --data-dir DATA_DIR`` as a real process."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridge",
            "connector",
            "vault",
            *args,
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(env),
        check=False,
    )
