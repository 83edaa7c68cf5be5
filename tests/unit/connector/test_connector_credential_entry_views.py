"""The access-log filter: a credential-entry link's token never reaches uvicorn's log."""

from __future__ import annotations

import logging

from hybridge.connector.credential_entry_views import _RedactLinkTokens

TOKEN = "q3V9xH2cF8mN1pR7tY5wZ0aB4dE6gJ8kL2nP4sU6vX8"


def _access_record(path: str) -> logging.LogRecord:
    # uvicorn.protocols.http: '%s - "%s %s HTTP/%s" %d' % (client, method, path, version, status)
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5555", "GET", path, "1.1", 200),
        None,
    )


def test_link_token_is_redacted_from_access_log_lines() -> None:
    record = _access_record(f"/credential-entry/{'a' * 32}/{TOKEN}")
    assert _RedactLinkTokens().filter(record)
    message = record.getMessage()
    assert TOKEN not in message
    assert f"/credential-entry/{'a' * 32}/<token>" in message


def test_other_paths_are_left_alone() -> None:
    record = _access_record("/exchange/abc?x=1")
    _RedactLinkTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5555 - "GET /exchange/abc?x=1 HTTP/1.1" 200'


def test_graph_link_token_is_redacted_and_its_configuration_kept() -> None:
    record = _access_record(f"/credential-entry/graph/{'b' * 32}/{TOKEN}")
    assert _RedactLinkTokens().filter(record)
    message = record.getMessage()
    assert TOKEN not in message
    assert f"/credential-entry/graph/{'b' * 32}/<token>" in message
