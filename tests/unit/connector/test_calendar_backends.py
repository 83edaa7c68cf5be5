"""The per-kind pieces of the calendar service: which alarm a refused credential raises."""

from __future__ import annotations

import datetime as dt

from hybridge.calendar.sync import Alarm
from hybridge.connector.calendar_backends import (
    EWS_REJECTED_CODE,
    GRAPH_REJECTED_CODE,
    engine_alarm,
    missing_credential,
    rejected_alarm,
    rejected_code,
)
from hybridge.connector.exchange_config import ExchangeConfig, ExchangeRecord
from hybridge.connector.exchange_graph_config import GraphConfig, GraphRecord
from hybridge.core.control import MAX_TEXT

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
AADSTS = (
    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
    "request is the client secret value, not the client secret ID. " * 4
)


def graph_record() -> GraphRecord:
    config = GraphConfig(
        display_name="Contoso Online",
        tenant_id="8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f",
        client_id="3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c",
        test_mailbox="alice@contoso.test",
    )
    return GraphRecord("g-1", config, NOW, "admin", NOW, "admin", None, None, None)


def ews_record() -> ExchangeRecord:
    config = ExchangeConfig(
        display_name="Contoso on premises",
        username="CONTOSO\\svc-hybridge",
        test_mailbox="alice@contoso.test",
        ews_url="https://mail.contoso.test/EWS/Exchange.asmx",
    )
    return ExchangeRecord("e-1", config, NOW, "admin", NOW, "admin", None, None, None)


def test_graph_refusal_names_the_client_secret_and_its_remedy() -> None:
    alarm = engine_alarm(graph_record(), Alarm(EWS_REJECTED_CODE, AADSTS))
    assert alarm.code == GRAPH_REJECTED_CODE == rejected_code(graph_record())
    assert alarm.message.startswith("The application's client secret was rejected")
    assert "expiry date" in alarm.message
    assert "hybridge connector calendar graph set --id g-1 --secret-stdin" in alarm.message
    assert "/exchange/graph/g-1" in alarm.message
    # The remedy comes before the server's words: the control channel's cut keeps it.
    sent = f"calendar: {alarm.message}"[:MAX_TEXT]
    assert "/exchange/graph/g-1" in sent and "AADSTS7000215" in alarm.message
    assert missing_credential(graph_record()) == "client secret"


def test_ews_refusal_keeps_the_impersonation_password_text() -> None:
    alarm = engine_alarm(ews_record(), Alarm(EWS_REJECTED_CODE, "401 Unauthorized"))
    assert alarm.code == EWS_REJECTED_CODE == rejected_code(ews_record())
    assert alarm.message.startswith("The impersonation password was rejected")
    assert "credential-entry link" in alarm.message
    assert "client secret" not in alarm.message and "graph set" not in alarm.message
    assert alarm.message.endswith("(401 Unauthorized)")
    assert missing_credential(ews_record()) == "impersonation password"


def test_graph_text_never_says_impersonation() -> None:
    text = rejected_alarm(graph_record())
    assert "impersonation" not in text and "credential-entry link" not in text


def test_other_engine_alarms_keep_their_code() -> None:
    alarm = engine_alarm(graph_record(), Alarm("something_else", "why"))
    assert alarm.code == "something_else"
