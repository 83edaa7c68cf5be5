"""The emulator's configuration loader, directory rules and store, without a socket."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hybridge.testing.ews import (
    DirectoryAccount,
    EmulatorConfig,
    EmulatorConfigError,
    MailboxStore,
    StoreLookupError,
    ThrottlePolicy,
    config_from_dict,
    load_config,
)
from hybridge.testing.ews.directory import Directory
from hybridge.testing.ews.syncstate import InvalidSyncState

T0 = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)


def test_sync_states_round_trip_whatever_bytes_the_mac_holds() -> None:
    # The MAC is random binary; thousands of states make every byte value appear in it.
    store = MailboxStore()
    folder = store.calendar("a@contoso.test")
    for seq in range(3000):
        assert store.decode_state(folder, store.encode_state(folder, seq)) == seq


def test_sync_state_of_another_folder_or_generation_is_refused() -> None:
    store = MailboxStore()
    cal = store.calendar("a@contoso.test")
    other = store.calendar("b@contoso.test")
    state = store.encode_state(cal, 5)
    with pytest.raises(InvalidSyncState, match="another folder"):
        store.decode_state(other, state)
    store.invalidate_sync_states("a@contoso.test")
    with pytest.raises(InvalidSyncState, match="expired"):
        store.decode_state(cal, state)
    with pytest.raises(InvalidSyncState, match="not one this server issued"):
        store.decode_state(cal, "!!!")


def test_add_calendar_item_requires_aware_times() -> None:
    store = MailboxStore()
    with pytest.raises(StoreLookupError, match="timezone-aware"):
        store.add_calendar_item(
            "a@contoso.test", subject="x", start=T0.replace(tzinfo=None), end=T0
        )


def test_seeded_item_properties() -> None:
    store = MailboxStore()
    item = store.add_calendar_item(
        "a@contoso.test",
        subject="Weekly",
        start=T0,
        end=T0 + dt.timedelta(hours=1),
        timezone="W. Europe Standard Time",
        organizer="boss@contoso.test",
        required_attendees=["a@contoso.test"],
        recurrence_weekly_days=["Monday"],
    )
    assert item.text("Subject") == "Weekly"
    assert item.text("Start") == "2026-12-01T09:00:00Z"
    assert item.props["StartTimeZone"].get("Id") == "W. Europe Standard Time"
    assert "Recurrence" in item.props
    assert [e.kind for e in store.events_after(store.calendar("a@contoso.test"), 0)] == ["Created"]
    with pytest.raises(StoreLookupError):
        store.set_subject("no-such-id", "x")


def test_directory_logon_names_and_scope() -> None:
    directory = Directory(
        EmulatorConfig(
            accounts=(
                DirectoryAccount("svc@contoso.test", "svc", "pw", has_mailbox=False),
                DirectoryAccount("a@contoso.test", "a", "pw"),
            )
        )
    )
    svc = directory.find_logon("CONTOSO", "svc")
    assert svc is not None and svc.smtp == "svc@contoso.test"
    assert directory.find_logon("contoso.test", "SVC") == svc
    assert directory.find_logon("", "svc@contoso.test") == svc
    assert directory.find_logon("FABRIKAM", "svc") is None
    assert directory.mailbox_account("svc@contoso.test") is None  # no mailbox
    assert not directory.may_impersonate(svc, "a@contoso.test")
    directory.grant_impersonation("svc", frozenset({"b@contoso.test"}))
    assert not directory.may_impersonate(svc, "a@contoso.test")
    directory.grant_impersonation("svc")
    assert directory.may_impersonate(svc, "a@contoso.test")


def test_throttle_counts_per_mailbox() -> None:
    directory = Directory(
        EmulatorConfig(throttling=(("*", ThrottlePolicy(after_requests=1, busy_responses=2)),))
    )
    assert not directory.count_request("a@contoso.test").busy
    assert directory.count_request("a@contoso.test").busy
    assert directory.count_request("a@contoso.test").busy
    assert not directory.count_request("a@contoso.test").busy  # two busy answers given
    assert not directory.count_request("b@contoso.test").busy  # counted separately


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"accounts": [{"smtp": "nope", "username": "u", "password": "p"}]}, "not an address"),
        ({"accounts": [{"smtp": "a@b.c", "username": "D\\u", "password": "p"}]}, "sAMAccountName"),
        ({"accounts": [{"smtp": "a@b.c", "username": "u"}]}, "lacks 'password'"),
        (
            {
                "accounts": [
                    {"smtp": "a@b.c", "username": "u", "password": "p"},
                    {"smtp": "x@b.c", "username": "U", "password": "p"},
                ]
            },
            "defined twice",
        ),
        ({"throttling": {"a@b.c": {"after_requests": -1}}}, "negative"),
        ({"throttling": {"a@b.c": {"after_requests": 1, "style": "x"}}}, "style"),
        ([], "JSON object"),
    ],
)
def test_config_rejections(raw: object, message: str) -> None:
    with pytest.raises(EmulatorConfigError, match=message):
        config_from_dict(raw)  # type: ignore[arg-type]


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text("{not json")
    with pytest.raises(EmulatorConfigError, match=r"users\.json"):
        load_config(path)
    path.write_text(json.dumps({"accounts": [{"smtp": "a@b.c", "username": "a", "password": "p"}]}))
    assert load_config(path).accounts[0].smtp == "a@b.c"


def test_module_exits_2_on_a_bad_config(tmp_path: Path) -> None:
    (tmp_path / "users.json").write_text("[]")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridge.testing.ews",
            "--cert",
            str(tmp_path / "c.pem"),
            "--key",
            str(tmp_path / "k.pem"),
            "--config",
            str(tmp_path / "users.json"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "JSON object" in proc.stderr
