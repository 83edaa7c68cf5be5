"""Stopping EWS streaming is prompt: ``EwsStreamingNotifier.stop()`` cuts each group's live
connection instead of waiting for its next notification or the connection's end.

The EWS emulator here sends no heartbeat for ten minutes and keeps a connection for
29 "minutes" of a minute each, as a quiet Exchange does: a stop flag alone is not seen.
"""

from __future__ import annotations

import datetime as dt
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hybridge.calendar.ews import EwsSettings
from hybridge.calendar.ews.backend import EwsBackend
from hybridge.calendar.ews.streaming import EwsStreamingNotifier
from hybridge.testing.ews import (
    DirectoryAccount,
    EmulatorConfig,
    EwsEmulator,
    ImpersonationAssignment,
)

USERS = ("alice", "bob", "carol")
PASSWORD = "Svc-Passw0rd!streaming"


@pytest.fixture
def quiet_ews(calendar_pki: tuple[Path, Path, Path]) -> Iterator[EwsEmulator]:
    cert, key, _ = calendar_pki
    config = EmulatorConfig(
        accounts=(
            DirectoryAccount("svc@contoso.test", "svc-hybridge", PASSWORD, has_mailbox=False),
            *(DirectoryAccount(f"{u}@contoso.test", u, f"{u}-pw") for u in USERS),
        ),
        impersonation=(ImpersonationAssignment("Hybridge", "svc-hybridge", None),),
        streaming_minute_seconds=60.0,
        streaming_heartbeat_seconds=600.0,
    )
    with EwsEmulator(config, cert_file=cert, key_file=key) as ews:
        yield ews


@pytest.fixture
def backend(quiet_ews: EwsEmulator, client_ssl_context: ssl.SSLContext) -> Iterator[EwsBackend]:
    settings = EwsSettings(
        username="CONTOSO\\svc-hybridge",
        test_mailbox="alice@contoso.test",
        ews_url=quiet_ews.ews_url,
        timeout_seconds=10,
    )
    ews = EwsBackend(settings, PASSWORD, ssl_context=client_ssl_context)
    yield ews
    ews.close()


def _streaming_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ews-streaming-")]


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _live_notifier(backend: EwsBackend) -> tuple[EwsStreamingNotifier, list[str]]:
    notifier = EwsStreamingNotifier(backend, group_size=1, retry_seconds=5.0)
    seen: list[str] = []
    notifier.watch([f"{u}@contoso.test" for u in USERS], seen.append)
    assert len(notifier.groups) == 3
    _until(lambda: notifier.live_connections == 3, 10, "three live streaming connections")
    return notifier, seen


def test_stop_with_three_live_groups_returns_within_two_seconds(
    backend: EwsBackend, quiet_ews: EwsEmulator
) -> None:
    assert _streaming_threads() == []
    notifier, _ = _live_notifier(backend)
    began = time.monotonic()
    notifier.stop()
    elapsed = time.monotonic() - began
    assert elapsed < 2.0, f"stop() took {elapsed:.2f} s"
    assert _streaming_threads() == []
    assert notifier.groups == [] and notifier.live_connections == 0


def test_rewatch_replaces_live_groups_promptly(backend: EwsBackend) -> None:
    notifier, seen = _live_notifier(backend)
    try:
        began = time.monotonic()
        notifier.watch(["alice@contoso.test"], seen.append)
        assert time.monotonic() - began < 2.0
        # Only the new group is left: the three old threads ended.
        _until(lambda: notifier.live_connections == 1, 10, "the new group's connection")
        assert [t.name for t in _streaming_threads()] == ["ews-streaming-alice@contoso.test"]
    finally:
        notifier.stop()
    assert _streaming_threads() == []


def test_stop_flag_alone_is_not_seen_on_a_quiet_connection(backend: EwsBackend) -> None:
    """The rejecting twin: what the old stop() did (set the flags, wait) leaves every group
    blocked on its quiet connection; the cut is what ends them."""
    notifier, _ = _live_notifier(backend)
    groups = list(notifier._groups)
    try:
        for group in groups:
            group.stopping.set()
        time.sleep(1.0)
        assert all(g.is_alive() for g in groups)
        assert notifier.live_connections == 3
    finally:
        began = time.monotonic()
        notifier.stop()
    assert time.monotonic() - began < 2.0
    assert not any(g.is_alive() for g in groups)


def test_a_change_still_arrives_before_stop_and_none_after(
    backend: EwsBackend, quiet_ews: EwsEmulator
) -> None:
    notifier, seen = _live_notifier(backend)
    # Each group reports its mailbox once on connecting (the catch-up).
    _until(lambda: len(seen) >= 3, 5, "the catch-up of every group")
    assert sorted(seen) == [f"{u}@contoso.test" for u in USERS]
    _add(quiet_ews, "bob@contoso.test", "Pushed")
    _until(lambda: len(seen) > 3, 5, "the notification for bob")
    assert seen[3:] == ["bob@contoso.test"]
    notifier.stop()
    after = len(seen)
    _add(quiet_ews, "carol@contoso.test", "After stop")
    time.sleep(0.5)
    assert len(seen) == after


def _add(ews: EwsEmulator, mailbox: str, subject: str) -> None:
    start = dt.datetime(2027, 2, 1, 9, 0, tzinfo=dt.UTC)
    ews.store.add_calendar_item(
        mailbox, subject=subject, start=start, end=start + dt.timedelta(hours=1)
    )
