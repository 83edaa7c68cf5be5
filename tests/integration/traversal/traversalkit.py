"""Helpers of the traversal tests: a real edge, a real connector, a premises SIP server.

- the edge is ``hybridge edge serve`` (``tests/integration/edge/edgekit.py``), with a DNS
  zone for the cloud and a traversal zone for ``connector.example.test``;
- the connector is ``hybridge connector serve`` in a child process, configured with the
  real ``hybridge connector traversal set`` command; its trust store holds the test root;
- the premises SIP server is a small blocking UAS/UAC on loopback (TCP or TLS) that takes
  the connection the connector opens and speaks SIP over it, framed by our codec.

Nothing is mocked: real certificates, real processes, real TLS on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))

from edgekit import (
    CLOUD,
    CONNECTOR,
    EDGE,
    EdgeProcess,
    Identity,
    Pki,
    SipPeer,
    answer,
    client_ssl,
    expect,
    launch_edge,
    prepare_edge_dir,
    request,
    running_edge,
    start_edge,
)
from kamkit import Kamailio, start_kamailio

from hybridge.connector.demo_run import RoleProcess, free_port, start_role
from hybridge.connector.traversal_config import (
    EdgeAddress,
    PremisesServer,
    TraversalConfig,
    TraversalStore,
)
from hybridge.storage.db import open_database, sqlite_url
from hybridge.truststore import CertificateSource, open_trust_store
from hybridge.truststore.services import DATABASE_NAME
from hybridge.vault import Secret, Vault, configured_source
from hybridge.web.accounts import create_admin
from hybridge.web.clock import system_clock

PBX = "pbx.example.test"
#: The connector's name in its Vias (``--hostname``).
CONNECTOR_HOST = "connector.example.test"

__all__ = [
    "CLOUD",
    "CONNECTOR",
    "EDGE",
    "EdgeProcess",
    "Identity",
    "Kamailio",
    "Pki",
    "SipPeer",
    "answer",
    "client_ssl",
    "expect",
    "prepare_edge_dir",
    "request",
    "running_edge",
    "start_edge",
    "start_kamailio",
]


def start_edge_as(directory: Path, identity: Identity) -> EdgeProcess:
    """``hybridge edge serve`` presenting ``identity`` (for the rejecting twins)."""
    return launch_edge(directory, identity, metrics=False)


@dataclass
class ConnectorProcess:
    """A running ``hybridge connector serve`` and its data directory."""

    role: RoleProcess
    data_dir: Path
    root: Path

    def log(self) -> str:
        return self.role.log_text()

    def wait_log(self, pattern: str, *, start: int = 0, timeout: float = 15.0) -> re.Match[str]:
        """The first match of ``pattern`` in the log after offset ``start``; else fail."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = regex.search(self.log()[start:])
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {pattern!r}; connector said:\n{self.log()}")

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the connector's /metrics (0.0 when absent)."""
        context = ssl.create_default_context(cafile=str(self.root))
        url = self.role.url + "/metrics"  # https://127.0.0.1:<port>, built by start_connector
        with urllib.request.urlopen(url, context=context, timeout=5) as r:  # noqa: S310
            text = r.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def wait_metric(self, name: str, wanted: float, *, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric(name) == wanted:
                return
            time.sleep(0.1)
        raise AssertionError(f"{name} never became {wanted}; connector said:\n{self.log()}")

    def traversal(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``hybridge connector traversal ARGS --data-dir <its dir>``."""
        return subprocess.run(
            [sys.executable, "-m", "hybridge", "connector", "traversal", *args,
             "--data-dir", str(self.data_dir)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def configure(
        self,
        edge: str,
        edge_name: str,
        premises: str,
        identity: Identity | None,
        *,
        keepalive: float = 0.5,
    ) -> None:
        """Store a configuration in the connector's database and vault from this process,
        as ``traversal set`` does (faster than a CLI process; the CLI has its own tests)."""
        database = open_database(sqlite_url(self.data_dir / DATABASE_NAME), "node")
        try:
            vault = Vault.open(database, configured_source(self.data_dir, environ={}))
            config = TraversalConfig(
                edge=EdgeAddress.parse(edge),
                edge_name=edge_name,
                premises=PremisesServer.parse(premises),
                keepalive_interval=keepalive,
                certificate_pem=identity.chain.read_text() if identity else None,
            )
            key = Secret(identity.key.read_bytes()) if identity else None
            TraversalStore(database, vault).set(config, key=key, actor="test")
        finally:
            database.dispose()

    def admin(self) -> httpx.Client:
        """An HTTPS client logged in to the connector's admin UI (admin created here)."""
        password = "traversal integration password"
        database = open_database(sqlite_url(self.data_dir / DATABASE_NAME), "node")
        try:
            with database.transaction() as db:
                create_admin(db, "admin", password, system_clock())
        finally:
            database.dispose()
        context = ssl.create_default_context(cafile=str(self.root))
        client = httpx.Client(base_url=self.role.url, verify=context, timeout=15)
        page = client.get("/login")
        tokens = re.findall(r'name="csrf_token" value="([^"]*)"', page.text)
        response = client.post(
            "/login", data={"login": "admin", "password": password, "csrf_token": tokens[-1]}
        )
        assert response.status_code in (200, 303), response.text
        return client

    def stop(self) -> None:
        self.role.stop()


def start_connector(
    work: Path, pki: Pki, extra_env: dict[str, str] | None = None
) -> ConnectorProcess:
    """``hybridge connector serve`` whose trust store holds the test root (manual anchor);
    ``extra_env`` adds or overrides environment variables (e.g. the header timeout)."""
    data_dir = work / "connector"
    with open_trust_store(data_dir) as trust:
        trust.add_manual([CertificateSource("root.pem", pki.root.pem)], actor="test")
    https = pki.leaf("connector-https", dns=["localhost"], ips=["127.0.0.1"])
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    args = [
        "connector", "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
        "--port", str(port), "--base-url", url, "--hostname", CONNECTOR_HOST,
        "--cert", str(https.chain), "--key", str(https.key),
    ]  # fmt: skip
    env = dict(os.environ)
    # Bounded test timings: re-dials within 0.1-0.5 s, configuration read every 0.2 s.
    env.update(
        HYBRIDGE_TRAVERSAL_BACKOFF_BASE="0.1",
        HYBRIDGE_TRAVERSAL_BACKOFF_CAP="0.5",
        HYBRIDGE_TRAVERSAL_POLL="0.2",
        HYBRIDGE_LOG_LEVEL="INFO",
    )
    env.update(extra_env or {})
    root = pki.root_file()
    role = start_role("connector", args, url, root, work / "connector.log", env=env)
    return ConnectorProcess(role, data_dir, root)


class Pbx:
    """The premises SIP server: accepts the connector's connection (TCP or TLS)."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.context = context

    @property
    def uri(self) -> str:
        transport = "tls" if self.context is not None else "tcp"
        return f"sip:127.0.0.1:{self.port};transport={transport}"

    def accept(self, timeout: float = 15.0) -> SipPeer:
        """The connector's connection (TLS handshake done server-side when TLS)."""
        self.listener.settimeout(timeout)
        raw, _ = self.listener.accept()
        raw.settimeout(timeout)
        sock: Any = raw
        if self.context is not None:
            sock = self.context.wrap_socket(raw, server_side=True)
        return SipPeer(sock)

    def keep_accepting(self) -> None:
        """Accept (and TLS-handshake) every connection in a thread, until ``close``."""

        def loop() -> None:
            while True:
                try:
                    peer = self.accept(timeout=60)
                except (OSError, TimeoutError):
                    if self.listener.fileno() < 0:
                        return
                    continue
                self._accepted.append(peer)

        self._accepted: list[SipPeer] = []
        threading.Thread(target=loop, daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        for peer in getattr(self, "_accepted", []):
            peer.close()


def pbx_tls_context(pki: Pki, name: str) -> ssl.SSLContext:
    """A server context presenting a certificate for ``name`` from the test root."""
    identity = pki.leaf(f"pbx-{name}", dns=[name])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(identity.chain), str(identity.key))
    return context
