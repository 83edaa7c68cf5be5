"""The connector's channel page: ``present`` and the real template, rendered by Jinja."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import hybridge.connector
from hybridge.connector.control_link import ChannelStatus
from hybridge.connector.control_views import present
from hybridge.web.pages import make_templates

NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC).timestamp()
TEMPLATES = Path(hybridge.connector.__file__).parent / "templates"


def render(view: dict[str, object]) -> str:
    templates = make_templates(TEMPLATES, globals_={"role_name": "Hybridge Connector"})
    template = templates.env.get_template("control_status.html")
    return template.render(channel=present(view, NOW), web=None, csrf_token="")


def status(**fields: object) -> ChannelStatus:
    value = ChannelStatus(since=NOW - 90)
    for name, item in fields.items():
        setattr(value, name, item)
    return value


def test_connected_with_applied_push() -> None:
    view = status(
        state="connected",
        installed_seq=7,
        cloud_seq=7,
        last_heartbeat_sent=NOW - 3,
        last_heartbeat_acked=NOW - 3,
        last_push={
            "at": NOW - 45,
            "sequence": 7,
            "applied": True,
            "reason": None,
            "added": ["ab" * 32],
            "removed": [],
        },
    ).view()
    page = render(view)
    assert 'class="badge ok">connected<' in page
    assert '2026-11-27 11:58:30 UTC</span> <span class="muted">(90 s ago)' in page
    assert 'id="heartbeat-acked"><span title="2026-11-27 11:59:57 UTC">' in page
    assert "sequence 7" in page and "(cloud: 7)" in page and ">behind<" not in page
    assert 'id="push-seq">7<' in page and 'class="badge ok">applied<' in page
    assert "abababababababab…" in page
    assert 'class="badge ok">none<' in page  # no alarm


def test_refused_push_shows_the_reason_and_no_diff() -> None:
    view = status(
        state="connected",
        installed_seq=7,
        cloud_seq=8,
        last_push={
            "at": NOW - 5,
            "sequence": 8,
            "applied": False,
            "reason": "bad_certificate",
            "added": [],
            "removed": [],
        },
    ).view()
    page = render(view)
    assert 'class="badge bad">refused</span> bad_certificate' in page
    assert ">Added<" not in page
    assert 'class="badge warn">behind<' in page


def test_reconnecting_shows_next_attempt_alarm_and_error() -> None:
    view = status(
        state="offline",
        next_attempt_at=NOW + 4.4,
        attempt=3,
        unreachable_since=NOW - 400,
        last_error="cannot open the control channel: [Errno 111] Connection refused",
        alarms=["cloud unreachable for 400s"],
    ).view()
    channel = present(view, NOW)
    assert channel["label"] == "reconnecting" and channel["badge"] == "bad"
    assert channel["next_attempt"] == {"iso": "2026-11-27 12:00:04 UTC", "relative": "in 4 s"}
    assert channel["unreachable_since"]["relative"] == "6 min ago"
    page = render(view)
    assert 'id="next-attempt"' in page and "(attempt 4, back-off with jitter)" in page
    assert 'class="badge bad">cloud unreachable for 400s<' in page
    assert "[Errno 111] Connection refused" in page


def test_next_attempt_is_only_shown_while_reconnecting() -> None:
    view = status(state="connected", next_attempt_at=NOW + 3).view()
    assert view["next_attempt_at"] is None
    assert 'id="next-attempt"' not in render(view)


@pytest.mark.parametrize(
    ("offset", "phrase"),
    [(0, "now"), (-5, "5 s ago"), (30, "in 30 s"), (-600, "10 min ago"), (-36000, "10 h ago")],
)
def test_relative_times(offset: float, phrase: str) -> None:
    view = status(state="connected", since=NOW + offset).view()
    assert present(view, NOW)["since"]["relative"] == phrase


def test_unknown_state_is_shown_as_is_with_a_warning_badge() -> None:
    channel = present(status(state="draining").view(), NOW)
    assert (channel["label"], channel["badge"]) == ("draining", "warn")
