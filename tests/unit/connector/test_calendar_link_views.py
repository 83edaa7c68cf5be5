"""The Calendar page and API of the connector app (lifespan running, not registered)."""

from __future__ import annotations

import time

import pytest
from connector_app import App, csrf_of

from hybridge.connector.calendar_service import CalendarService
from hybridge.connector.calendar_settings import CalendarSettings
from hybridge.core.control import Backoff


def test_calendar_page_and_api_say_what_is_missing(app: App) -> None:
    service: CalendarService = app.client.app.state.calendar  # type: ignore[attr-defined]
    service.wake()
    deadline = time.monotonic() + 10
    while (view := app.client.get("/api/calendar").json())["state"] == "starting":
        assert time.monotonic() < deadline, "the calendar service never ran a round"
        time.sleep(0.05)
    assert (view["state"], view["detail"]) == (
        "not_registered",
        "register this connector to a cloud first",
    )
    assert view["mailboxes"] == [] and view["alarms"] == []
    assert view["users"] == {"version": None, "count": 0, "fetched_at": None, "last_error": None}
    page = app.client.get("/calendar")
    assert page.status_code == 200
    assert "Ask the cloud for the user list now" in page.text
    # The form carries the session's token (macro imported with context).
    assert csrf_of(page.text)


def test_calendar_refresh_needs_the_csrf_token(app: App) -> None:
    refused = app.client.post("/calendar/refresh", follow_redirects=False)
    assert refused.status_code == 403
    token = csrf_of(app.client.get("/calendar").text)
    done = app.client.post("/calendar/refresh", data={"csrf_token": token}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/calendar")
    assert app.client.post("/api/calendar/refresh").status_code == 403


def test_calendar_needs_a_login(app: App) -> None:
    app.client.cookies.clear()
    response = app.client.get("/api/calendar")
    assert (response.status_code, response.json()["error"]) == (401, "login required")


def test_settings_from_the_environment() -> None:
    settings = CalendarSettings.from_env(
        {
            "HYBRIDGE_CALENDAR_USERS_POLL": "30",
            "HYBRIDGE_CALENDAR_BACKOFF_BASE": "0.5",
            "HYBRIDGE_CALENDAR_BACKOFF_CAP": "10",
            "HYBRIDGE_CALENDAR_STREAMING": "0",
            "HYBRIDGE_CALENDAR_WORKERS": "4",
        }
    )
    assert (settings.users_poll, settings.streaming, settings.workers) == (30.0, False, 4)
    assert settings.backoff == Backoff(0.5, 10.0)
    assert CalendarSettings.from_env({}) == CalendarSettings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HYBRIDGE_CALENDAR_USERS_POLL": "soon"}, "'soon' is not a number of seconds"),
        ({"HYBRIDGE_CALENDAR_CONFIG_POLL": "0"}, "config_poll 0.0 must be 0.1..86400 seconds"),
        ({"HYBRIDGE_CALENDAR_STREAMING": "yes"}, "must be 0 or 1"),
        ({"HYBRIDGE_CALENDAR_WORKERS": "99"}, "workers 99 must be 1..64"),
        ({"HYBRIDGE_CALENDAR_BACKOFF_BASE": "5", "HYBRIDGE_CALENDAR_BACKOFF_CAP": "1"}, "base"),
    ],
)
def test_bad_settings_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        CalendarSettings.from_env(env)
