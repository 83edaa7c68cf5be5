"""The emulator counts the TCP connections clients open (what a benchmark reports as the
connector's connections to Exchange), kept-alive requests once, and closed ones no more."""

from __future__ import annotations

import socket
import ssl
import time

import httpx
from ews_soap_requests import GET_CALENDAR, SVC_PASSWORD, envelope, response_code

from hybridge.testing.ews import EwsEmulator
from hybridge.testing.ews.server import EwsHttpServer

AUTH = ("CONTOSO\\svc-hybridge", SVC_PASSWORD)


def _until(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_kept_alive_connection_is_counted_once(
    emulator: EwsEmulator, client_context: ssl.SSLContext
) -> None:
    assert (emulator.connections_accepted, emulator.connections_open) == (0, 0)
    with httpx.Client(verify=client_context, timeout=10) as http:
        for _ in range(3):
            r = http.post(
                emulator.ews_url,
                content=envelope(GET_CALENDAR, impersonate="alice@contoso.test"),
                auth=AUTH,
            )
            assert response_code(r.content) == "NoError"
        assert (emulator.connections_accepted, emulator.connections_open) == (1, 1)
    assert _until(lambda: emulator.connections_open == 0)
    assert emulator.connections_accepted == 1


def test_a_connection_that_fails_its_handshake_is_counted_and_closed(
    emulator: EwsEmulator,
) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to a TLS port
        assert raw.recv(1024) == b""  # the server hangs up
    assert _until(lambda: emulator.connections_open == 0)
    assert emulator.connections_accepted == 1


def test_the_listen_backlog_takes_a_connector_opening_many_connections_at_once() -> None:
    # socketserver's default of 5 made simultaneous streaming groups wait for SYN retries.
    assert EwsHttpServer.request_queue_size >= 128
