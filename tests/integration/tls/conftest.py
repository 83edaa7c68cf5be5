"""Real certificates and a real TLS server on loopback for the tls integration tests.

The certificate factory lives with the core tests (``tests/unit/core/tlsverify/tlspki.py``);
``certs.load_tlspki`` loads it by its path so every suite builds certificates the same way.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from certs import load_tlspki


@pytest.fixture(scope="session")
def pki() -> ModuleType:
    return load_tlspki()


@dataclass
class Files:
    """PEM files on disk for one identity (chain file holds leaf then intermediates)."""

    chain: Path
    key: Path


def write_identity(directory: Path, stem: str, leaf: Any, *intermediates: Any) -> Files:
    chain = directory / f"{stem}.pem"
    chain.write_bytes(leaf.pem + b"".join(i.pem for i in intermediates))
    key = directory / f"{stem}.key"
    key.write_bytes(leaf.key_pem())
    return Files(chain, key)


@dataclass
class ServerOutcome:
    """What the server thread saw: its check's verdict, or the handshake error."""

    verdict: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class LoopbackServer:
    """One-connection-at-a-time TLS server on 127.0.0.1 in a thread, bounded by timeouts."""

    def __init__(
        self, context: ssl.SSLContext, on_connection: Callable[[ssl.SSLSocket], Any]
    ) -> None:
        self._context = context
        self._on_connection = on_connection
        self._listener = socket.create_server(("127.0.0.1", 0))
        # Short accept timeout so close() is prompt; the loop below bounds the lifetime.
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.outcomes: list[ServerOutcome] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # Bounded: at most 20 connections and 30 s of life, then the thread ends.
        deadline = dt.datetime.now() + dt.timedelta(seconds=30)
        served = 0
        while served < 20 and not self._stop.is_set() and dt.datetime.now() < deadline:
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            served += 1
            outcome = ServerOutcome()
            self.outcomes.append(outcome)
            raw.settimeout(5)
            try:
                with self._context.wrap_socket(raw, server_side=True) as tls:
                    outcome.verdict = self._on_connection(tls)
                    tls.sendall(b"ok" if getattr(outcome.verdict, "accepted", False) else b"no")
            except (OSError, ssl.SSLError) as exc:
                outcome.error = exc
            finally:
                raw.close()
                outcome.done.set()

    def last(self, timeout: float = 5) -> ServerOutcome:
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
        while not self.outcomes and dt.datetime.now() < deadline:
            threading.Event().wait(0.01)
        assert self.outcomes, "the server saw no connection"
        outcome = self.outcomes[-1]
        assert outcome.done.wait(timeout), "the server did not finish the connection"
        return outcome

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[..., LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start(
        context: ssl.SSLContext, on_connection: Callable[[ssl.SSLSocket], Any]
    ) -> LoopbackServer:
        server = LoopbackServer(context, on_connection)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
