"""The calendar link's alarms: raised once, kept fresh while raised again, expired."""

from __future__ import annotations

from hybridge.calendar.sync import Alarm
from hybridge.connector.calendar_link import LinkAlarms


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_alarm_expires_only_when_not_raised_again() -> None:
    clock = Clock()
    alarms = LinkAlarms(clock)
    refused = Alarm("cloud_refused", "the cloud refused meeting 'x': HTTP 400 malformed")
    alarms.raise_(refused)
    clock.now += 500
    alarms.raise_(refused)  # the retried call failed again: still a problem
    clock.now += 500
    alarms.expire("cloud_refused", 600)
    assert alarms.active() == [refused]
    clock.now += 101
    alarms.expire("cloud_refused", 600)
    assert alarms.active() == []


def test_alarms_are_listed_by_code_and_cleared_by_code() -> None:
    alarms = LinkAlarms(Clock())
    alarms.raise_(Alarm("impersonation_password_rejected", "rejected"))
    alarms.raise_(Alarm("cloud_unreachable", "down"))
    assert [a.code for a in alarms.active()] == [
        "cloud_unreachable",
        "impersonation_password_rejected",
    ]
    alarms.clear("cloud_unreachable")
    alarms.clear("never raised")
    assert [a.code for a in alarms.active()] == ["impersonation_password_rejected"]
