"""OofReader: every watched mailbox read once per period, spread evenly, a few at a time."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from hybridge.calendar.errors import MailboxNotFoundError
from hybridge.connector.calendar_oof import OofReader, phase

MAILBOXES = [f"user{i:05d}@contoso.test" for i in range(3000)]


def _read(mailbox: str) -> dict[str, str]:
    if mailbox.startswith("gone"):
        raise MailboxNotFoundError(f"Exchange has no mailbox {mailbox!r}", mailbox=mailbox)
    return {"state": "disabled", "mailbox": mailbox}


def _wait(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_each_mailbox_is_due_exactly_once_per_period_in_even_slices() -> None:
    reader = OofReader(_read, period=900.0)
    reader.watch(MAILBOXES)
    try:
        assert reader.due(1000.0) == []  # the first round starts the schedule
        seen: Counter[str] = Counter()
        per_round = []
        now = 1000.0
        for _ in range(180):  # 5-second rounds for one 900 s period, crossing its wrap
            now += 5.0
            due = reader.due(now)
            per_round.append(len(due))
            seen.update(due)
        assert set(seen) == set(MAILBOXES) and set(seen.values()) == {1}
        # Spread evenly: 3,000 over 180 rounds is ~16.7 a round, never a burst.
        assert max(per_round) <= 40 and min(per_round) >= 3
        # The next period reads everyone again, once.
        again: Counter[str] = Counter()
        for _ in range(180):
            now += 5.0
            again.update(reader.due(now))
        assert set(again.values()) == {1} and len(again) == len(MAILBOXES)
    finally:
        reader.close()


def test_a_long_gap_makes_everyone_due_once_and_time_going_back_nobody() -> None:
    reader = OofReader(_read, period=60.0)
    reader.watch(MAILBOXES[:50])
    try:
        reader.due(0.0)
        assert sorted(reader.due(500.0)) == sorted(MAILBOXES[:50])
        assert reader.due(400.0) == []
    finally:
        reader.close()


def test_phase_is_stable_and_within_the_period() -> None:
    assert phase("alice@contoso.test", 900.0) == phase("alice@contoso.test", 900.0)
    assert all(0 <= phase(m, 900.0) < 900.0 for m in MAILBOXES)
    # Adding users moves nobody else's turn.
    before = {m: phase(m, 900.0) for m in MAILBOXES[:10]}
    reader = OofReader(_read, period=900.0)
    try:
        reader.watch(MAILBOXES[:10])
        reader.watch(MAILBOXES[:20])
        assert {m: phase(m, 900.0) for m in MAILBOXES[:10]} == before
    finally:
        reader.close()


def test_results_are_collected_once_and_failures_wait_for_the_next_turn() -> None:
    reader = OofReader(_read, period=60.0)
    reader.watch(["alice@contoso.test", "gone@contoso.test"])
    try:
        assert reader.submit("alice@contoso.test")
        assert reader.submit("gone@contoso.test")
        _wait(lambda: reader.pending == 0)
        assert reader.collect() == {
            "alice@contoso.test": {"state": "disabled", "mailbox": "alice@contoso.test"}
        }
        assert reader.collect() == {}
        assert reader.started == 2 and reader.failed == 1
    finally:
        reader.close()


def test_a_pending_mailbox_is_not_read_twice_and_the_queue_is_bounded() -> None:
    release = threading.Event()

    def slow(mailbox: str) -> str:
        release.wait(5)
        return mailbox

    reader = OofReader(slow, period=60.0, concurrency=1, max_pending=2)
    reader.watch(["a@x.test", "b@x.test", "c@x.test"])
    try:
        assert reader.submit("a@x.test")
        assert not reader.submit("a@x.test")  # still pending: refused
        assert reader.submit("b@x.test")
        assert not reader.submit("c@x.test")  # queue full: waits for its next turn
        release.set()
        _wait(lambda: reader.pending == 0)
        assert reader.collect() == {"a@x.test": "a@x.test", "b@x.test": "b@x.test"}
    finally:
        reader.close()


def test_results_of_a_mailbox_no_longer_watched_are_dropped() -> None:
    release = threading.Event()

    def slow(mailbox: str) -> str:
        release.wait(5)
        return mailbox

    reader = OofReader(slow, period=60.0)
    reader.watch(["a@x.test", "b@x.test"])
    try:
        reader.submit("a@x.test")
        reader.watch(["b@x.test"])  # a was removed while its read was in flight
        release.set()
        _wait(lambda: reader.pending == 0)
        assert reader.collect() == {}
    finally:
        reader.close()


def test_submit_after_close_is_refused() -> None:
    reader = OofReader(_read, period=60.0)
    reader.close()
    assert not reader.submit("alice@contoso.test")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"period": 0.0}, "out-of-office period 0.0 must be > 0 seconds"),
        ({"period": 60.0, "concurrency": 0}, "out-of-office concurrency 0 must be 1..64"),
        ({"period": 60.0, "concurrency": 65}, "out-of-office concurrency 65 must be 1..64"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        OofReader(_read, **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message
