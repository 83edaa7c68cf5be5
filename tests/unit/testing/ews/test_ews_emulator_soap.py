"""Impersonation, throttling faults and SyncFolderItems of the EWS emulator, over raw SOAP."""

from __future__ import annotations

import datetime as dt

import httpx
from ews_soap_requests import (
    GET_CALENDAR,
    NS,
    SVC_PASSWORD,
    envelope,
    parse,
    response_code,
    sync_items,
)

from hybridge.testing.ews import EwsEmulator

AUTH = ("CONTOSO\\svc-hybridge", SVC_PASSWORD)
T0 = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)


def _post(http: httpx.Client, emulator: EwsEmulator, body: str, **kw: object) -> httpx.Response:
    return http.post(emulator.ews_url, content=envelope(body, **kw), auth=AUTH)  # type: ignore[arg-type]


def test_response_carries_server_version_info(emulator: EwsEmulator, http: httpx.Client) -> None:
    r = _post(http, emulator, GET_CALENDAR, impersonate="alice@contoso.test")
    info = parse(r.content).find("s:Header/t:ServerVersionInfo", NS)
    assert info is not None and info.get("MajorVersion") == "15"
    folder = parse(r.content).find(".//m:Folders/t:CalendarFolder/t:FolderClass", NS)
    assert folder is not None and folder.text == "IPF.Appointment"


def test_impersonation_inside_scope_is_allowed(emulator: EwsEmulator, http: httpx.Client) -> None:
    r = _post(http, emulator, GET_CALENDAR, impersonate="alice@contoso.test")
    assert r.status_code == 200 and response_code(r.content) == "NoError"


def test_impersonation_outside_scope_is_denied(emulator: EwsEmulator, http: httpx.Client) -> None:
    r = _post(http, emulator, GET_CALENDAR, impersonate="bob@contoso.test")
    assert r.status_code == 500
    fault = parse(r.content).find("s:Body/s:Fault", NS)
    assert fault is not None
    assert fault.findtext("faultcode") == "t:ErrorImpersonateUserDenied"
    assert response_code(r.content) == "ErrorImpersonateUserDenied"


def test_impersonation_without_the_role_is_denied(
    emulator: EwsEmulator, http: httpx.Client
) -> None:
    emulator.directory.revoke_impersonation("svc-hybridge")
    r = _post(http, emulator, GET_CALENDAR, impersonate="alice@contoso.test")
    assert response_code(r.content) == "ErrorImpersonateUserDenied"
    emulator.directory.grant_impersonation("svc-hybridge")  # organisation-wide now
    r = _post(http, emulator, GET_CALENDAR, impersonate="bob@contoso.test")
    assert response_code(r.content) == "NoError"


def test_impersonating_a_missing_mailbox(emulator: EwsEmulator, http: httpx.Client) -> None:
    r = _post(http, emulator, GET_CALENDAR, impersonate="ghost@contoso.test")
    assert r.status_code == 500
    assert response_code(r.content) == "ErrorNonExistentMailbox"


def test_service_account_without_mailbox_needs_impersonation(
    emulator: EwsEmulator, http: httpx.Client
) -> None:
    r = _post(http, emulator, GET_CALENDAR)
    assert response_code(r.content) == "ErrorMissingEmailAddress"


def test_unknown_server_version_is_refused(emulator: EwsEmulator, http: httpx.Client) -> None:
    r = _post(
        http, emulator, GET_CALENDAR, impersonate="alice@contoso.test", version="Exchange2099"
    )
    assert response_code(r.content) == "ErrorInvalidServerVersion"


def test_throttling_fault_shape(emulator: EwsEmulator, http: httpx.Client) -> None:
    emulator.directory.grant_impersonation("svc-hybridge")
    for _ in range(2):  # bob's policy: busy after 2 requests, once
        assert (
            response_code(
                _post(http, emulator, GET_CALENDAR, impersonate="bob@contoso.test").content
            )
            == "NoError"
        )
    busy = _post(http, emulator, GET_CALENDAR, impersonate="bob@contoso.test")
    assert busy.status_code == 500
    fault = parse(busy.content).find("s:Body/s:Fault", NS)
    assert fault is not None and fault.findtext("faultcode") == "t:ErrorServerBusy"
    detail = fault.find("detail")
    assert detail is not None
    assert detail.findtext("e:ResponseCode", namespaces=NS) == "ErrorServerBusy"
    value = detail.find("t:MessageXml/t:Value", NS)
    assert value is not None and value.get("Name") == "BackOffMilliseconds"
    assert value.text == "1500"
    # busy_responses=1: the next request is served again; alice was never throttled.
    assert (
        response_code(_post(http, emulator, GET_CALENDAR, impersonate="bob@contoso.test").content)
        == "NoError"
    )
    assert (
        response_code(_post(http, emulator, GET_CALENDAR, impersonate="alice@contoso.test").content)
        == "NoError"
    )


def _changes(content: bytes) -> tuple[str, bool, list[tuple[str, str]]]:
    root = parse(content)
    state = root.findtext(".//m:SyncState", namespaces=NS) or ""
    last = root.findtext(".//m:IncludesLastItemInRange", namespaces=NS) == "true"
    out = []
    changes = root.find(".//m:Changes", NS)
    assert changes is not None, content
    for change in changes:
        kind = change.tag.rsplit("}", 1)[1]
        subject = change.findtext(".//t:Subject", namespaces=NS) or ""
        out.append((kind, subject))
    return state, last, out


def test_sync_folder_items_state_progression(emulator: EwsEmulator, http: httpx.Client) -> None:
    store = emulator.store
    ids = [
        store.add_calendar_item(
            "alice@contoso.test",
            subject=f"m{i}",
            start=T0 + dt.timedelta(hours=i),
            end=T0 + dt.timedelta(hours=i, minutes=30),
        ).item_id
        for i in range(3)
    ]
    state, last, changes = _changes(
        _post(http, emulator, sync_items(None, 2), impersonate="alice@contoso.test").content
    )
    assert changes == [("Create", "m0"), ("Create", "m1")] and not last
    state, last, changes = _changes(
        _post(http, emulator, sync_items(state, 2), impersonate="alice@contoso.test").content
    )
    assert changes == [("Create", "m2")] and last
    store.set_subject(ids[0], "m0 renamed")
    store.remove(ids[1])
    state2, last, changes = _changes(
        _post(http, emulator, sync_items(state, 10), impersonate="alice@contoso.test").content
    )
    assert changes == [("Update", "m0 renamed"), ("Delete", "")] and last
    # The same state again gives the same answer: states are positions, not cursors.
    _, _, again = _changes(
        _post(http, emulator, sync_items(state, 10), impersonate="alice@contoso.test").content
    )
    assert again == changes
    _, _, nothing = _changes(
        _post(http, emulator, sync_items(state2, 10), impersonate="alice@contoso.test").content
    )
    assert nothing == []


def test_sync_state_rejections(emulator: EwsEmulator, http: httpx.Client) -> None:
    r = _post(http, emulator, sync_items(None, 5), impersonate="alice@contoso.test")
    state, _, _ = _changes(r.content)
    forged = _post(http, emulator, sync_items("Zm9yZ2Vk", 5), impersonate="alice@contoso.test")
    assert response_code(forged.content) == "ErrorInvalidSyncStateData"
    emulator.store.invalidate_sync_states("alice@contoso.test")
    stale = _post(http, emulator, sync_items(state, 5), impersonate="alice@contoso.test")
    assert response_code(stale.content) == "ErrorInvalidSyncStateData"
    zero = _post(http, emulator, sync_items(None, 0), impersonate="alice@contoso.test")
    assert response_code(zero.content) == "ErrorInvalidArgument"
    too_many = _post(http, emulator, sync_items(None, 513), impersonate="alice@contoso.test")
    assert response_code(too_many.content) == "ErrorInvalidArgument"


def test_malformed_soap_is_a_schema_fault(emulator: EwsEmulator, http: httpx.Client) -> None:
    r = http.post(emulator.ews_url, content=b"<not-soap/>", auth=AUTH)
    assert r.status_code == 500
    assert response_code(r.content) == "ErrorSchemaValidation"


def test_http503_throttling_carries_retry_after(emulator: EwsEmulator, http: httpx.Client) -> None:
    from hybridge.testing.ews import ThrottlePolicy

    emulator.directory.set_throttle(
        "alice@contoso.test", ThrottlePolicy(after_requests=0, back_off_ms=2500, style="http503")
    )
    r = _post(http, emulator, GET_CALENDAR, impersonate="alice@contoso.test")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "3"


def test_soap_autodiscover_get_user_settings(emulator: EwsEmulator, http: httpx.Client) -> None:
    a = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
    body = (
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{a}"><s:Header>'
        "<a:RequestedServerVersion>Exchange2010</a:RequestedServerVersion></s:Header><s:Body>"
        "<a:GetUserSettingsRequestMessage><a:Request><a:Users>"
        "<a:User><a:Mailbox>alice@contoso.test</a:Mailbox></a:User>"
        "<a:User><a:Mailbox>ghost@contoso.test</a:Mailbox></a:User></a:Users>"
        "<a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting></a:RequestedSettings>"
        "</a:Request></a:GetUserSettingsRequestMessage></s:Body></s:Envelope>"
    )
    r = http.post(
        f"{emulator.base_url}/autodiscover/autodiscover.svc", content=body.encode(), auth=AUTH
    )
    assert r.status_code == 200
    users = parse(r.content).findall(f".//{{{a}}}UserResponse")
    assert [u.findtext(f"{{{a}}}ErrorCode") for u in users] == ["NoError", "InvalidUser"]
    assert users[0].findtext(f".//{{{a}}}Value") == emulator.ews_url


def test_pox_autodiscover(emulator: EwsEmulator, http: httpx.Client) -> None:
    req = (
        '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
        'requestschema/2006"><Request><EMailAddress>alice@contoso.test</EMailAddress>'
        "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/"
        "responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"
    )
    r = http.post(
        f"{emulator.base_url}/autodiscover/autodiscover.xml", content=req.encode(), auth=AUTH
    )
    assert r.status_code == 200
    assert emulator.ews_url.encode() in r.content
    unauthenticated = http.post(
        f"{emulator.base_url}/autodiscover/autodiscover.xml", content=req.encode()
    )
    assert unauthenticated.status_code == 401
