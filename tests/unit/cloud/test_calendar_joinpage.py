"""The public join page on the real app and SQLite: an invitee's view, and one 404 for
every id that leads nowhere (tampered, malformed, another organisation's, deleted, a
removed user's room, a row the current key would not give)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from cloud_helpers import Cloud
from test_calendar_api import as_connector, enroll, meeting, org_id, put

from hybridge.calendar import wire
from hybridge.calendar.model import Attendee, zone
from hybridge.cloud import calendar_service as service
from hybridge.cloud.calendar_join import (
    TOKEN_BYTES,
    TOKEN_CHARS,
    join_details,
    load_join_key,
    parse_join_path,
)
from hybridge.cloud.calendar_models import calendar_meeting
from hybridge.core.meetings import JoinDetails, JoinTemplate, MeetingKeyword

MISSING = "This join link does not lead to a meeting."
SECRET_BODY = "Door code 4711, do not share"


@pytest.fixture
def acme(cloud: Cloud) -> Cloud:
    _, cert = enroll(cloud)
    as_connector(cloud, cert)
    with cloud.services.database.transaction() as db:
        service.add_users(
            db,
            org_id(cloud, "Acme"),
            [("alice@acme.test", "Alice Example"), ("bob@acme.test", "Bob")],
            "t",
            cloud.clock(),
        )
    return cloud


def details_of(cloud: Cloud, **over: object) -> JoinDetails:
    answer = put(cloud, meeting(**over))
    assert answer.status_code == 200, answer.text
    return wire.join_details_from_json(answer.json()["join_details"])


def path_of(url: str) -> str:
    return urlsplit(url).path


def assert_missing(cloud: Cloud, path: str) -> str:
    response = cloud.client.get(path)
    assert response.status_code == 404, (path, response.text)
    assert MISSING in response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-robots-tag"] == "noindex"
    assert "Traceback" not in response.text
    return response.text


def test_one_time_meeting_page_shows_an_invitees_view(acme: Cloud) -> None:
    berlin = zone("Europe/Berlin")
    details = details_of(
        acme,
        body=SECRET_BODY,
        start=dt.datetime(2026, 12, 1, 10, 0, tzinfo=berlin),
        end=dt.datetime(2026, 12, 1, 11, 30, tzinfo=berlin),
        attendees=(
            Attendee("room1@acme.test", "resource"),
            Attendee("carol@partner.test", "required"),
        ),
    )
    # Another meeting of the same organizer must not show on this one's page.
    details_of(acme, meeting_id="other", uid="other", subject="Secret merger @webex")
    assert path_of(details.join_url).startswith("/meet/j/")
    response = acme.client.get(path_of(details.join_url))  # no login
    assert response.status_code == 200, response.text
    page = response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-robots-tag"] == "noindex"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert '<h1 id="subject">Review @webex</h1>' in page
    assert "Alice Example" in page and "alice@acme.test" in page
    # Times in the meeting's own zone, with its offset.
    assert "Tuesday 01 December 2026, 10:00" in page and "11:30" in page
    assert "Europe/Berlin (UTC+0100)" in page
    assert f'<code id="sip">{details.sip_address}</code>' in page
    assert f'<code id="number">{details.meeting_number}</code>' in page
    for leak in ("carol@partner.test", "room1@acme.test", SECRET_BODY, "Secret merger"):
        assert leak not in page
    # Public page: no portal navigation, even though the route sits beside the portal.
    assert 'href="/connectors"' not in page


def test_space_and_personal_room_pages(acme: Cloud) -> None:
    space = details_of(acme, meeting_id="s1", uid="s1", subject="Standup @meet")
    assert path_of(space.join_url).startswith("/meet/space/")
    shown = acme.client.get(path_of(space.join_url))
    assert shown.status_code == 200 and "Standup @meet" in shown.text
    room = details_of(acme, meeting_id="r1", uid="r1", subject="1:1 @webex:myroom")
    again = details_of(acme, meeting_id="r2", uid="r2", subject="Planning @webex:myroom")
    assert room.join_url == again.join_url and path_of(room.join_url).startswith("/meet/room/")
    page = acme.client.get(path_of(room.join_url))
    assert page.status_code == 200
    assert '<h1 id="room">Personal room of Alice Example</h1>' in page.text
    assert f'<code id="sip">{room.sip_address}</code>' in page.text
    # One room serves all of its owner's :myroom meetings: it names none of them.
    assert "1:1" not in page.text and "Planning" not in page.text
    assert page.headers["x-robots-tag"] == "noindex"


def test_tampered_and_malformed_ids_get_one_and_the_same_page(acme: Cloud) -> None:
    details = details_of(acme)
    path = path_of(details.join_url)
    token = path.rsplit("/", 1)[1]
    assert len(token) == TOKEN_CHARS and TOKEN_BYTES * 8 >= 120
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    pages = {
        assert_missing(acme, f"/meet/j/{flipped}"),  # tampered, well-formed
        assert_missing(acme, f"/meet/space/{token}"),  # right token, wrong kind
        assert_missing(acme, f"/meet/room/{token}"),
        assert_missing(acme, f"/meet/j/{token[:-1]}"),  # too short
        assert_missing(acme, f"/meet/j/{token}A"),  # too long
        assert_missing(acme, f"/meet/j/{token[:-1]}%21"),  # outside base64url
        assert_missing(acme, f"/meet/x/{token}"),  # unknown kind
        assert_missing(acme, f"/meet/j/{token}/extra"),  # extra segment
        assert_missing(acme, "/meet/"),
    }
    assert len(pages) == 1  # byte-identical: no oracle on the shape of the id


def test_another_organisations_token_is_not_found(acme: Cloud) -> None:
    details_of(acme)
    key = load_join_key(acme.data_dir)
    # The same mailbox and uid under Bravo's organisation: a well-formed token, correctly
    # made with the real key, for a meeting nobody stored.
    forged = join_details(
        key,
        acme.services.settings.base_url,
        org_id=org_id(acme, "Bravo"),
        mailbox="alice@acme.test",
        uid="uid-1",
        meeting_id="AAMkAD/x+y=",
        keyword=MeetingKeyword("webex", None, "subject"),
        template=JoinTemplate(),
    )
    assert_missing(acme, path_of(forged.join_url))
    # And a token made with another cloud's key for Acme's own meeting.
    other = join_details(
        bytes(32),
        acme.services.settings.base_url,
        org_id=org_id(acme, "Acme"),
        mailbox="alice@acme.test",
        uid="uid-1",
        meeting_id="AAMkAD/x+y=",
        keyword=MeetingKeyword("webex", None, "subject"),
        template=JoinTemplate(),
    )
    assert_missing(acme, path_of(other.join_url))


def test_deleted_meeting_is_not_found(acme: Cloud) -> None:
    details = details_of(acme)
    assert acme.client.get(path_of(details.join_url)).status_code == 200
    gone = acme.client.delete("/api/calendar/meetings/alice%40acme.test/AAMkAD%2Fx%2By%3D")
    assert gone.status_code == 204
    assert_missing(acme, path_of(details.join_url))


def test_keyword_removed_is_not_found(acme: Cloud) -> None:
    details = details_of(acme)
    assert put(acme, meeting(version="ck2", subject="Review")).json() == {"join_details": None}
    assert_missing(acme, path_of(details.join_url))


def test_removed_users_room_is_not_found(acme: Cloud) -> None:
    room = details_of(acme, meeting_id="r1", uid="r1", subject="1:1 @webex:myroom")
    assert acme.client.get(path_of(room.join_url)).status_code == 200
    with acme.services.database.transaction() as db:
        service.remove_users(db, org_id(acme, "Acme"), ["alice@acme.test"], "t", acme.clock())
    assert_missing(acme, path_of(room.join_url))


def test_a_stored_url_the_key_would_not_give_serves_nothing(acme: Cloud) -> None:
    details = details_of(acme)
    # A row whose stored join_url is not what the current key derives (an older key, a
    # hand-edited row): the page derives again and refuses it.
    planted = f"{acme.services.settings.base_url}/meet/j/{'A' * TOKEN_CHARS}"
    with acme.services.database.transaction() as db:
        db.execute(sa.update(calendar_meeting).values(join_url=planted))
    assert_missing(acme, f"/meet/j/{'A' * TOKEN_CHARS}")
    assert_missing(acme, path_of(details.join_url))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("j/" + "a" * TOKEN_CHARS, ("j", "a" * TOKEN_CHARS)),
        ("room/" + "-_" * (TOKEN_CHARS // 2), ("room", "-_" * (TOKEN_CHARS // 2))),
        ("j/" + "a" * (TOKEN_CHARS - 1) + "=", None),
        ("j", None),
        ("", None),
        ("myroom/" + "a" * TOKEN_CHARS, None),
        ("j/" + "a" * TOKEN_CHARS + "/", None),
    ],
)
def test_parse_join_path(path: str, expected: tuple[str, str] | None) -> None:
    assert parse_join_path(path) == expected
