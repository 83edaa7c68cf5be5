"""The calendar API flows, sans-IO: each flow yields its request and is answered with a real
``httpx.Response``, exactly as ``CloudLink`` would after the network round-trip."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

from hybridge.calendar import wire
from hybridge.calendar.errors import BackendError
from hybridge.calendar.model import Meeting, OutOfOffice
from hybridge.connector.calendar_cloud import (
    CloudCalendarRefused,
    CloudCalendarUnavailable,
    EnabledUser,
    out_of_office_json,
    put_meeting_flow,
    retain_flow,
    status_flow,
    users_flow,
)
from hybridge.connector.errors import ConnectorError
from hybridge.connector.flow import Flow
from hybridge.core.meetings import JoinDetails, JoinTemplate

CLOUD = "https://cloud.test"


def answer(flow: Flow[Any], response: httpx.Response) -> tuple[httpx.Request, Any]:
    request = next(flow)
    try:
        flow.send(response)
    except StopIteration as stop:
        return request, stop.value
    raise AssertionError("the flow asked for a second request")


def meeting(meeting_id: str = "AAMk/a+b==") -> Meeting:
    start = dt.datetime(2027, 1, 5, 9, tzinfo=dt.UTC)
    return Meeting(
        mailbox="Alice@Contoso.test",
        meeting_id=meeting_id,
        version="ck1",
        organizer="alice@contoso.test",
        subject="Sync @webex",
        start=start,
        end=start + dt.timedelta(hours=1),
        start_tz="UTC",
        end_tz="UTC",
    )


def test_users_flow_sends_the_version_as_entity_tag_and_reads_304_as_unchanged() -> None:
    request, result = answer(users_flow(CLOUD, 7), httpx.Response(304))
    assert request.method == "GET" and str(request.url) == f"{CLOUD}/api/calendar/users"
    assert request.headers["If-None-Match"] == '"7"'
    assert result is None


def test_users_flow_parses_the_list() -> None:
    body = {"version": 3, "users": [{"mailbox": "Bob@Contoso.test", "display_name": "Bob"}]}
    request, result = answer(users_flow(CLOUD, None), httpx.Response(200, json=body))
    assert "If-None-Match" not in request.headers
    assert result.version == 3
    assert result.users == (EnabledUser("bob@contoso.test", "Bob"),)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"users": []}, "version None must be a non-negative integer"),
        ({"version": True, "users": []}, "version True must be a non-negative integer"),
        ({"version": 1, "users": {}}, "users {} must be a list"),
        ({"version": 1, "users": [{"display_name": "x"}]}, "users[0].mailbox is missing"),
        ({"version": 1, "users": [{"mailbox": "no-at"}]}, "mailbox 'no-at' is not an address"),
    ],
)
def test_a_malformed_user_list_is_refused_naming_the_member(
    body: dict[str, Any], reason: str
) -> None:
    with pytest.raises(CloudCalendarRefused) as refused:
        answer(users_flow(CLOUD, None), httpx.Response(200, json=body))
    assert refused.value.code == "protocol_error"
    assert reason in str(refused.value)


def test_a_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(CloudCalendarRefused, match="a body that is not JSON"):
        answer(users_flow(CLOUD, None), httpx.Response(200, content=b"<html>"))


def test_a_4xx_keeps_the_clouds_code_detail_and_field() -> None:
    response = httpx.Response(
        400, json={"error": "malformed", "detail": "end: before start", "field": "end"}
    )
    with pytest.raises(CloudCalendarRefused) as refused:
        answer(put_meeting_flow(CLOUD, meeting()), response)
    exc = refused.value
    assert (exc.status, exc.code, exc.field, exc.detail) == (
        400,
        "malformed",
        "end",
        "end: before start",
    )
    assert str(exc) == (
        "the cloud refused meeting 'AAMk/a+b==' of 'alice@contoso.test': HTTP 400 malformed "
        "(field 'end'): 'end: before start'"
    )
    # The engine treats it as one mailbox's backend failure (back-off), not as a crash.
    assert isinstance(exc, BackendError) and isinstance(exc, ConnectorError)


def test_a_5xx_is_transient() -> None:
    with pytest.raises(CloudCalendarUnavailable, match="with HTTP 503"):
        answer(users_flow(CLOUD, None), httpx.Response(503))


def test_put_meeting_encodes_the_path_and_the_body_with_the_wire_module() -> None:
    details = JoinDetails("https://meet.test/j/1", JoinTemplate("Hello"), meeting_number="1 2")
    response = httpx.Response(200, json={"join_details": wire.join_details_to_json(details)})
    request, result = answer(put_meeting_flow(CLOUD, meeting()), response)
    assert request.method == "PUT"
    # docs/calendar-protocol.md: percent-encoded; an EWS id's '/', '+' and '=' included.
    assert request.url.raw_path == b"/api/calendar/meetings/alice%40contoso.test/AAMk%2Fa%2Bb%3D%3D"
    assert wire.meeting_from_bytes(request.content) == meeting()
    assert result == details


def test_put_meeting_null_means_no_details_and_a_broken_answer_is_refused() -> None:
    _, result = answer(
        put_meeting_flow(CLOUD, meeting()), httpx.Response(200, json={"join_details": None})
    )
    assert result is None
    bad = {"join_details": {"join_url": "http://x", "sip_address": None, "meeting_number": None,
                            "template": {"header": "", "footer": ""}}}  # fmt: skip
    with pytest.raises(CloudCalendarRefused, match=r"join_details\.join_url"):
        answer(put_meeting_flow(CLOUD, meeting()), httpx.Response(200, json=bad))
    with pytest.raises(CloudCalendarRefused, match="no join_details member"):
        answer(put_meeting_flow(CLOUD, meeting()), httpx.Response(200, json={}))


def test_retain_and_status_bodies() -> None:
    request, _ = answer(
        retain_flow(CLOUD, "alice@contoso.test", frozenset({"b", "a"})), httpx.Response(204)
    )
    assert json.loads(request.content) == {"meeting_ids": ["a", "b"]}
    oof = out_of_office_json(
        OutOfOffice(
            "scheduled",
            True,
            reply="I am away (private text)",
            start=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
            end=dt.datetime(2027, 1, 9, tzinfo=dt.UTC),
        )
    )
    request, _ = answer(
        status_flow(CLOUD, "alice@contoso.test", "error", "denied", oof), httpx.Response(204)
    )
    body = json.loads(request.content)
    assert body == {
        "status": "error",
        "reason": "denied",
        "out_of_office": {
            "state": "scheduled",
            "active": True,
            "until": "2027-01-09T00:00:00+00:00",
        },
    }
    assert "private text" not in request.content.decode()  # the reply text is never sent
    # The cloud's own decoder reads what we send.
    assert wire.user_status_from_json(body).status == "error"
