"""The Graph emulator at the HTTP level (httpx over real TLS): the documented shapes, status
codes and error codes a Graph client relies on, each with its rejecting twin."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from hybridge.testing.graph import (
    AppRegistration,
    GraphEmulator,
    GraphTenantConfig,
    Mailbox,
    Pattern,
)

START = dt.datetime(2027, 2, 1, 9, 0, tzinfo=dt.UTC)
SCOPE = "https://graph.microsoft.com/.default"


@pytest.fixture
def http(client_ssl_context: ssl.SSLContext) -> Iterator[httpx.Client]:
    with httpx.Client(verify=client_ssl_context, timeout=10) as client:
        yield client


def token_form(emulator: GraphEmulator, **overrides: str) -> dict[str, str]:
    app = emulator.config.apps[0]
    form = {
        "grant_type": "client_credentials",
        "client_id": app.client_id,
        "client_secret": app.secrets[0],
        "scope": SCOPE,
    }
    form.update(overrides)
    return form


def bearer(emulator: GraphEmulator, http: httpx.Client) -> dict[str, str]:
    response = http.post(emulator.identity.token_endpoint, data=token_form(emulator))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def delta_url(emulator: GraphEmulator, user: str = "alice@contoso.test") -> str:
    return (
        f"{emulator.graph_url}/users/{user}/calendarView/delta"
        "?startDateTime=2027-01-01T00:00:00Z&endDateTime=2027-12-31T00:00:00Z"
    )


# -- identity platform ------------------------------------------------------------------------


def test_discovery_document_names_the_token_endpoint(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    url = f"{graph_emulator.authority_url}/v2.0/.well-known/openid-configuration"
    doc = http.get(url).json()
    assert doc["token_endpoint"] == graph_emulator.identity.token_endpoint
    assert doc["issuer"] == f"{graph_emulator.authority_url}/v2.0"
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    other = http.get(
        f"{graph_emulator.base_url}/{uuid.uuid4()}/v2.0/.well-known/openid-configuration"
    )
    assert other.status_code == 400 and other.json()["error_codes"] == [90002]


def test_client_secret_grant_issues_a_bearer_token(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    response = http.post(graph_emulator.identity.token_endpoint, data=token_form(graph_emulator))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"  # RFC 6749 §5.1
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600


@pytest.mark.parametrize(
    ("overrides", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, 400, "unauthorized_client", 700016),
        ({"scope": "https://graph.microsoft.com/Calendars.Read"}, 400, "invalid_scope", 1002012),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ],
)
def test_token_requests_are_refused_with_the_platform_error(
    graph_emulator: GraphEmulator,
    http: httpx.Client,
    overrides: dict[str, str],
    status: int,
    error: str,
    code: int,
) -> None:
    response = http.post(
        graph_emulator.identity.token_endpoint, data=token_form(graph_emulator, **overrides)
    )
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")
    assert "access_token" not in body


def test_client_assertion_cannot_be_replayed(
    calendar_pki: Any, http: httpx.Client, client_ssl_context: ssl.SSLContext
) -> None:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    leaf = ca.issue_cert("app", key_type=trustme.KeyType.RSA)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    app = AppRegistration(
        "3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c", certificates_pem=(leaf.cert_chain_pems[0].bytes(),)
    )
    config = GraphTenantConfig(
        tenant_id="8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f",
        apps=(app,),
        mailboxes=(Mailbox("alice@contoso.test"),),
    )
    cert_file, key_file, _ = calendar_pki
    with GraphEmulator(config, cert_file=cert_file, key_file=key_file) as emulator:
        now = int(time.time())
        thumb = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).decode()
        assertion = jwt.encode(
            {
                "aud": emulator.identity.token_endpoint,
                "iss": app.client_id,
                "sub": app.client_id,
                "jti": str(uuid.uuid4()),
                "nbf": now,
                "exp": now + 300,
            },
            leaf.private_key_pem.bytes(),
            algorithm="PS256",
            headers={"x5t#S256": thumb},
        )
        form = {
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "scope": SCOPE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
        first = http.post(emulator.identity.token_endpoint, data=form)
        assert first.status_code == 200, first.text
        replay = http.post(emulator.identity.token_endpoint, data=form)
        assert replay.status_code == 401
        assert "replay" in replay.json()["error_description"]


# -- Graph: authentication and errors ---------------------------------------------------------


def test_graph_without_a_token_is_401_with_a_bearer_challenge(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    response = http.get(delta_url(graph_emulator))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    # The twin: with a token the same request succeeds.
    assert (
        http.get(delta_url(graph_emulator), headers=bearer(graph_emulator, http)).status_code == 200
    )


def test_token_past_its_lifetime_is_401_expired(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    # exp is whole seconds: a 3 s token is valid for at least 2 s, room for one request on
    # a loaded machine (1 s was not).
    graph_emulator.identity.lifetime_seconds = 3
    headers = bearer(graph_emulator, http)
    assert http.get(delta_url(graph_emulator), headers=headers).status_code == 200
    time.sleep(3.1)  # the JWT's exp (whole seconds) is now in the past
    response = http.get(delta_url(graph_emulator), headers=headers)
    assert response.status_code == 401
    assert (
        response.json()["error"]["message"] == "Lifetime validation failed, the token is expired."
    )


def test_token_of_another_emulator_is_refused(
    graph_emulator: GraphEmulator, http: httpx.Client, calendar_pki: Any
) -> None:
    cert_file, key_file, _ = calendar_pki
    with GraphEmulator(graph_emulator.config, cert_file=cert_file, key_file=key_file) as other:
        foreign = bearer(other, http)
    response = http.get(delta_url(graph_emulator), headers=foreign)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_unknown_user_is_404_error_invalid_user(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    response = http.get(
        delta_url(graph_emulator, "ghost@contoso.test"), headers=bearer(graph_emulator, http)
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ErrorInvalidUser"


def test_delta_needs_a_window(graph_emulator: GraphEmulator, http: httpx.Client) -> None:
    url = f"{graph_emulator.graph_url}/users/alice@contoso.test/calendarView/delta"
    response = http.get(url, headers=bearer(graph_emulator, http))
    assert response.status_code == 400
    assert "StartDateTime and EndDateTime" in response.json()["error"]["message"]


def test_unknown_delta_token_is_410_sync_state_not_found(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    url = f"{graph_emulator.graph_url}/users/alice@contoso.test/calendarView/delta?$deltatoken=nope"
    response = http.get(url, headers=bearer(graph_emulator, http))
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "syncStateNotFound"


# -- Graph: delta paging ----------------------------------------------------------------------


def test_delta_pages_have_next_link_or_delta_link_and_removed_entries(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    headers = {**bearer(graph_emulator, http), "Prefer": "odata.maxpagesize=2"}
    ids = [
        graph_emulator.add_event(
            "alice@contoso.test",
            f"M{i}",
            start=START + dt.timedelta(days=i),
            end=START + dt.timedelta(days=i, hours=1),
        )
        for i in range(3)
    ]
    first = http.get(delta_url(graph_emulator), headers=headers)
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=2"
    page1 = first.json()
    assert len(page1["value"]) == 2 and "@odata.deltaLink" not in page1
    assert "$skiptoken=" in page1["@odata.nextLink"]
    page2 = http.get(page1["@odata.nextLink"], headers=headers).json()
    assert len(page2["value"]) == 1 and "@odata.nextLink" not in page2
    assert "$deltatoken=" in page2["@odata.deltaLink"]
    assert [e["id"] for e in page1["value"] + page2["value"]] == ids
    event = page1["value"][0]
    assert event["start"] == {"dateTime": "2027-02-01T09:00:00.0000000", "timeZone": "UTC"}
    assert event["@odata.etag"] == f'W/"{event["changeKey"]}"'
    graph_emulator.delete_event(ids[1])
    page3 = http.get(page2["@odata.deltaLink"], headers=headers).json()
    assert page3["value"] == [{"id": ids[1], "@removed": {"reason": "deleted"}}]


def test_series_appears_as_occurrences_in_the_requested_zone(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    master = graph_emulator.add_event(
        "alice@contoso.test",
        "Weekly",
        start=dt.datetime(2027, 3, 22, 9, 0, tzinfo=dt.UTC),
        end=dt.datetime(2027, 3, 22, 10, 0, tzinfo=dt.UTC),
        time_zone="Europe/Berlin",
        pattern=Pattern("weekly", 1, ("monday",), count=3),
    )
    headers = {
        **bearer(graph_emulator, http),
        "Prefer": 'outlook.timezone="W. Europe Standard Time"',
    }
    value = http.get(delta_url(graph_emulator), headers=headers).json()["value"]
    assert [e["type"] for e in value] == ["occurrence"] * 3
    assert {e["seriesMasterId"] for e in value} == {master}
    assert [e["start"]["dateTime"][:16] for e in value] == [
        "2027-03-22T10:00",
        "2027-03-29T10:00",
        "2027-04-05T10:00",
    ]  # 10:00 Berlin wall clock on both sides of the DST change
    # Occurrences carry their identity and times only; the master has the rest.
    assert set(value[0]) == {
        "@odata.type",
        "@odata.etag",
        "id",
        "seriesMasterId",
        "type",
        "start",
        "end",
    }
    assert value[0]["start"]["timeZone"] == "W. Europe Standard Time"
    got = http.get(
        f"{graph_emulator.graph_url}/users/alice@contoso.test/events/{master}", headers=headers
    )
    assert got.json()["type"] == "seriesMaster"
    assert got.json()["originalStartTimeZone"] == "W. Europe Standard Time"
    assert got.json()["recurrence"]["pattern"]["daysOfWeek"] == ["monday"]


def test_patch_refuses_properties_it_does_not_know(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    mid = graph_emulator.add_event(
        "alice@contoso.test", "x", start=START, end=START + dt.timedelta(hours=1)
    )
    url = f"{graph_emulator.graph_url}/users/alice@contoso.test/events/{mid}"
    response = http.patch(url, headers=bearer(graph_emulator, http), json={"isCancelled": True})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ErrorInvalidProperty"
    ok = http.patch(
        url,
        headers=bearer(graph_emulator, http),
        json={"body": {"contentType": "HTML", "content": "<p>hi</p>"}},
    )
    assert ok.status_code == 200 and ok.json()["body"]["contentType"] == "html"


# -- recurrence patterns, exceptions, deleted occurrences -------------------------------------

ALICE_EVENTS = "users/alice@contoso.test/events"


def _starts(value: list[dict[str, Any]], master: str) -> list[str]:
    return [e["start"]["dateTime"][:16] for e in value if e.get("seriesMasterId") == master]


@pytest.mark.parametrize(
    ("pattern", "first", "expected"),
    [
        # Thanksgiving: the fourth Thursday of November.
        (
            Pattern("relativeYearly", 1, ("thursday",), count=3, month=11, index="fourth"),
            dt.datetime(2027, 11, 25, 17, 0, tzinfo=dt.UTC),
            ["2027-11-25T17:00", "2028-11-23T17:00", "2029-11-22T17:00"],
        ),
        # Day 31 falls on the last day of shorter months.
        (
            Pattern("absoluteMonthly", 1, count=4, day_of_month=31),
            dt.datetime(2027, 1, 31, 9, 0, tzinfo=dt.UTC),
            ["2027-01-31T09:00", "2027-02-28T09:00", "2027-03-31T09:00", "2027-04-30T09:00"],
        ),
        # The last weekday of the month: the n-th of *any* of the days.
        (
            Pattern(
                "relativeMonthly",
                1,
                ("monday", "tuesday", "wednesday", "thursday", "friday"),
                count=3,
                index="last",
            ),
            dt.datetime(2027, 1, 29, 9, 0, tzinfo=dt.UTC),
            ["2027-01-29T09:00", "2027-02-26T09:00", "2027-03-31T09:00"],
        ),
        # 29 February: 28 February in the years without it.
        (
            Pattern("absoluteYearly", 1, count=2, day_of_month=29, month=2),
            dt.datetime(2028, 2, 29, 9, 0, tzinfo=dt.UTC),
            ["2028-02-29T09:00", "2029-02-28T09:00"],
        ),
        # Every other week from Sunday: Sunday goes with the Monday after it.
        (
            Pattern("weekly", 2, ("sunday", "monday"), count=4),
            dt.datetime(2027, 1, 3, 9, 0, tzinfo=dt.UTC),
            ["2027-01-03T09:00", "2027-01-04T09:00", "2027-01-17T09:00", "2027-01-18T09:00"],
        ),
    ],
)
def test_calendar_view_expands_every_pattern_type(
    graph_emulator: GraphEmulator,
    http: httpx.Client,
    pattern: Pattern,
    first: dt.datetime,
    expected: list[str],
) -> None:
    master = graph_emulator.add_event(
        "alice@contoso.test", "S", start=first, end=first + dt.timedelta(hours=1), pattern=pattern
    )
    url = (
        f"{graph_emulator.graph_url}/users/alice@contoso.test/calendarView/delta"
        "?startDateTime=2027-01-01T00:00:00Z&endDateTime=2030-12-31T00:00:00Z"
    )
    value = http.get(url, headers=bearer(graph_emulator, http)).json()["value"]
    assert _starts(value, master) == expected
    got = http.get(
        f"{graph_emulator.graph_url}/{ALICE_EVENTS}/{master}", headers=bearer(graph_emulator, http)
    ).json()["recurrence"]
    # Graph's shape: every pattern property present, the unused ones zero.
    assert set(got["pattern"]) == {
        "type",
        "interval",
        "month",
        "dayOfMonth",
        "daysOfWeek",
        "firstDayOfWeek",
        "index",
    }
    assert got["pattern"]["type"] == pattern.type
    assert got["range"] == {
        "type": "numbered",
        "startDate": first.date().isoformat(),
        "endDate": "0001-01-01",
        "recurrenceTimeZone": "UTC",
        "numberOfOccurrences": pattern.count,
    }


def _weekly(emulator: GraphEmulator) -> tuple[str, list[dt.datetime]]:
    first = dt.datetime(2027, 2, 1, 9, 0, tzinfo=dt.UTC)
    master = emulator.add_event(
        "alice@contoso.test",
        "Weekly",
        start=first,
        end=first + dt.timedelta(hours=1),
        pattern=Pattern("weekly", 1, ("monday",), count=4),
    )
    return master, [first + dt.timedelta(weeks=i) for i in range(4)]


def test_patching_an_occurrence_makes_one_exception_in_the_next_delta(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    headers = bearer(graph_emulator, http)
    master, starts = _weekly(graph_emulator)
    first = http.get(delta_url(graph_emulator), headers=headers).json()
    occurrence = [e["id"] for e in first["value"]][2]
    assert occurrence == graph_emulator.occurrence_id(master, starts[2])
    url = f"{graph_emulator.graph_url}/{ALICE_EVENTS}/{occurrence}"
    etag = http.get(url, headers=headers).json()["@odata.etag"]
    patched = http.patch(url, headers={**headers, "If-Match": etag}, json={"subject": "Moved"})
    assert patched.status_code == 200
    body = patched.json()
    assert (body["type"], body["id"], body["seriesMasterId"]) == ("exception", occurrence, master)
    assert body["subject"] == "Moved" and body["originalStart"] == "2027-02-15T09:00:00Z"
    later = http.get(first["@odata.deltaLink"], headers=headers).json()["value"]
    assert [(e["id"], e["type"]) for e in later] == [(occurrence, "exception")]
    # The stale ETag is refused now (the exception has its own).
    again = http.patch(url, headers={**headers, "If-Match": etag}, json={"subject": "x"})
    assert again.status_code == 412
    assert http.get(url, headers=headers).json()["subject"] == "Moved"


def test_deleting_an_occurrence_lists_it_removed_and_it_is_gone(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    headers = bearer(graph_emulator, http)
    master, starts = _weekly(graph_emulator)
    first = http.get(delta_url(graph_emulator), headers=headers).json()
    occurrence = graph_emulator.occurrence_id(master, starts[1])
    url = f"{graph_emulator.graph_url}/{ALICE_EVENTS}/{occurrence}"
    assert http.delete(url, headers=headers).status_code == 204
    later = http.get(first["@odata.deltaLink"], headers=headers).json()["value"]
    assert later == [{"id": occurrence, "@removed": {"reason": "deleted"}}]
    gone = http.get(url, headers=headers)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "ErrorItemNotFound"
    fresh = http.get(delta_url(graph_emulator), headers=headers).json()["value"]
    assert occurrence not in [e["id"] for e in fresh] and len(fresh) == 3


def test_an_id_that_is_not_an_occurrence_is_404(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    headers = bearer(graph_emulator, http)
    master, starts = _weekly(graph_emulator)
    for when in (starts[0] + dt.timedelta(hours=1), starts[3] + dt.timedelta(weeks=1)):
        bogus = graph_emulator.occurrence_id(master, when)
        got = http.get(f"{graph_emulator.graph_url}/{ALICE_EVENTS}/{bogus}", headers=headers)
        assert got.status_code == 404 and got.json()["error"]["code"] == "ErrorItemNotFound"
    ok = graph_emulator.occurrence_id(master, starts[3])
    assert (
        http.get(f"{graph_emulator.graph_url}/{ALICE_EVENTS}/{ok}", headers=headers).json()["type"]
        == "occurrence"
    )


def test_cancelled_occurrence_of_an_attendee_is_an_exception_marked_cancelled(
    graph_emulator: GraphEmulator, http: httpx.Client
) -> None:
    headers = bearer(graph_emulator, http)
    master, starts = _weekly(graph_emulator)
    occurrence = graph_emulator.cancel_occurrence(master, starts[2])
    got = http.get(f"{graph_emulator.graph_url}/{ALICE_EVENTS}/{occurrence}", headers=headers)
    assert got.json()["type"] == "exception" and got.json()["isCancelled"] is True
    value = http.get(delta_url(graph_emulator), headers=headers).json()["value"]
    assert [e["type"] for e in value] == ["occurrence", "occurrence", "exception", "occurrence"]
