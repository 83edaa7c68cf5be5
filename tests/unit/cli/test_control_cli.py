"""The control channel's ``serve`` flags (env vars as fallback) and the shared uvloop helper."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridge.cli.common import install_uvloop, uvicorn_loop, uvloop_available
from hybridge.cli.main import app

runner = CliRunner()


def test_uvloop_is_chosen_for_uvicorn_and_asyncio_run() -> None:
    import uvloop

    assert uvloop_available() and uvicorn_loop() == "uvloop"
    previous = asyncio.get_event_loop_policy()
    try:
        assert install_uvloop() is True

        async def loop_type() -> type:
            return type(asyncio.get_running_loop())

        assert asyncio.run(loop_type()) is uvloop.Loop
    finally:
        asyncio.set_event_loop_policy(previous)


@pytest.mark.parametrize(
    ("flag", "env"),
    [
        ("--redis-url", "HYBRIDGE_CONTROL_REDIS_URL"),
        ("--heartbeat-interval", "HYBRIDGE_CONTROL_HEARTBEAT"),
        ("--control-poll", "HYBRIDGE_CONTROL_POLL"),
    ],
)
def test_cloud_serve_help_names_flag_and_env_var(flag: str, env: str) -> None:
    result = runner.invoke(app, ["cloud", "serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert flag in result.output and env in result.output


@pytest.mark.parametrize(
    ("flag", "env"),
    [
        ("--reconnect-base", "HYBRIDGE_CONTROL_BACKOFF_BASE"),
        ("--reconnect-cap", "HYBRIDGE_CONTROL_BACKOFF_CAP"),
        ("--offline-alarm-after", "HYBRIDGE_CONTROL_ALARM_AFTER"),
    ],
)
def test_connector_serve_help_names_flag_and_env_var(flag: str, env: str) -> None:
    result = runner.invoke(app, ["connector", "serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert flag in result.output and env in result.output


def _files(tmp_path: Path) -> list[str]:
    # --cert/--key must exist; the control settings are refused before they are read.
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("unused")
    key.write_text("unused")
    return ["--cert", str(cert), "--key", str(key), "--data-dir", str(tmp_path / "d")]


def test_cloud_heartbeat_out_of_range_by_flag_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["cloud", "serve", *_files(tmp_path), "--heartbeat-interval", "0"])
    assert result.exit_code == 2
    assert "heartbeat interval 0; 1..3600 seconds" in result.output


def test_cloud_heartbeat_out_of_range_by_env_var_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["cloud", "serve", *_files(tmp_path)], env={"HYBRIDGE_CONTROL_HEARTBEAT": "7200"}
    )
    assert result.exit_code == 2
    assert "heartbeat interval 7200; 1..3600 seconds" in result.output


def test_cloud_poll_flag_wins_over_env_var(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["cloud", "serve", *_files(tmp_path), "--control-poll", "0.01"],
        env={"HYBRIDGE_CONTROL_POLL": "5"},
    )
    assert result.exit_code == 2
    assert "poll interval 0.01; 0.05..3600 seconds" in result.output


def test_connector_backoff_base_above_cap_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["connector", "serve", *_files(tmp_path), "--reconnect-base", "5", "--reconnect-cap", "1"],
    )
    assert result.exit_code == 2
    assert "back-off base 5.0 must be in (0, cap=1.0]" in result.output


def test_connector_alarm_delay_by_env_var_is_checked(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["connector", "serve", *_files(tmp_path)],
        env={"HYBRIDGE_CONTROL_ALARM_AFTER": "-1"},
    )
    assert result.exit_code == 2
    assert "offline alarm delay -1.0; 0 < seconds <= 2592000 (30 days)" in result.output
