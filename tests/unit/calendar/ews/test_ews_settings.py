"""EwsSettings accepts what an Exchange admin enters and names what it rejects."""

from __future__ import annotations

import pytest

from hybridge.calendar.errors import CalendarSettingsError
from hybridge.calendar.ews import ConnectionTestResult, EwsSettings

URL = "https://mail.contoso.com/EWS/Exchange.asmx"


@pytest.mark.parametrize("username", ["CONTOSO\\svc-hybridge", "svc@contoso.com"])
def test_accepts_down_level_and_upn(username: str) -> None:
    s = EwsSettings(username=username, test_mailbox="room1@contoso.com", ews_url=URL)
    assert s.username == username


def test_redirect_hosts_are_normalised() -> None:
    s = EwsSettings(
        username="svc@contoso.com",
        test_mailbox="room1@contoso.com",
        autodiscover_email="room1@contoso.com",
        autodiscover_redirect_hosts=frozenset({"Mail.Contoso.com."}),
    )
    assert s.autodiscover_redirect_hosts == frozenset({"mail.contoso.com"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ews_url": "http://mail.contoso.com/EWS/Exchange.asmx"}, "must be an https:// URL"),
        ({"ews_url": URL, "autodiscover_email": "a@contoso.com"}, "exactly one"),
        ({"ews_url": None}, "exactly one"),
        ({"username": "svc"}, "DOMAIN\\\\user or user@domain"),
        ({"username": "CONTOSO\\svc\\x"}, "DOMAIN\\\\user or user@domain"),
        ({"test_mailbox": "room1"}, "not an address"),
        ({"auth": "Kerberos"}, "must be one of"),
        ({"timeout_seconds": 0}, "must be in"),
        ({"ews_url": None, "autodiscover_email": "bad"}, "autodiscover_email"),
    ],
)
def test_rejections(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "username": "CONTOSO\\svc",
        "test_mailbox": "room1@contoso.com",
        "ews_url": URL,
    }
    base.update(kwargs)
    with pytest.raises(CalendarSettingsError, match=message):
        EwsSettings(**base)  # type: ignore[arg-type]


def test_result_code_is_checked() -> None:
    assert ConnectionTestResult("ok", "fine").ok
    assert not ConnectionTestResult("unauthorized", "no").ok
    with pytest.raises(ValueError, match="not one of"):
        ConnectionTestResult("weird", "x")
