"""``hybridge demo --full``: the cloud, the connector and the edge as real processes on loopback.

The same launcher starts both roles for the end-to-end tests: a role is ``hybridge cloud
serve`` / ``hybridge connector serve`` in a child process (the roles meet only over HTTPS,
as in production), and is ready when ``/healthz`` answers over TLS verified by the demo
root — a bounded wait, never a sleep-and-hope.

Layout of the work directory::

    WORK/pki/        the demo PKI (``hybridge pki init-demo``)
    WORK/cloud/      the cloud's data directory
    WORK/connector/  the connector's data directory
    WORK/edge/       the edge's data directory (``hybridge.demo.edge_run`` prepares it)
    WORK/*.log       each role's output

The edge, the demo PBX and the test call across them live in ``hybridge.demo.edge_run``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hybridge.core.errors import HybridgeError
from hybridge.demo.pki import DemoPki, init_demo_pki

#: How long a role may take to answer its first /healthz (imports, migrations, key files).
START_TIMEOUT = 60.0


class DemoRunError(HybridgeError):
    """A role did not start, or a setup command failed; the message quotes its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _hybridge(*args: str) -> list[str]:
    return [sys.executable, "-m", "hybridge", *args]


def run_command(args: list[str], *, stdin: str = "", env: dict[str, str] | None = None) -> str:
    """Run a ``hybridge`` command to completion; returns its stdout.

    Raises:
        DemoRunError: it exited non-zero (the message holds its stderr).
    """
    done = subprocess.run(
        _hybridge(*args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise DemoRunError(f"hybridge {' '.join(args[:3])} failed: {done.stderr.strip()[-800:]}")
    return done.stdout


@dataclass
class RoleProcess:
    """A running role: its URL, its process and where its output goes."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT (uvicorn's graceful stop), then SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def start_role(
    name: str, args: list[str], url: str, root_ca: Path, log_path: Path, *, env: dict[str, str]
) -> RoleProcess:
    """Start ``hybridge ARGS`` and wait until ``URL/healthz`` answers 200 over verified TLS.

    Raises:
        DemoRunError: the process exited, or did not answer within ``START_TIMEOUT``.
    """
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
    process = subprocess.Popen(_hybridge(*args), stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    role = RoleProcess(name, url, process, log_path)
    context = ssl.create_default_context(cafile=str(root_ca))
    # Readiness only ("is it listening with this certificate?"), not a trust decision: tests
    # start clouds whose certificate names another host on purpose.
    context.check_hostname = False
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoRunError(f"the {name} exited at start: {role.log_text()[-1500:]}")
        try:
            response = httpx.get(url + "/healthz", verify=context, timeout=2.0)
            if response.status_code == 200:
                return role
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    role.stop()
    raise DemoRunError(f"the {name} did not answer in {START_TIMEOUT}s: {role.log_text()[-1500:]}")


@dataclass
class DemoStack:
    """The demo's two roles, their data directories and the demo admins."""

    work: Path
    pki: DemoPki
    cloud: RoleProcess
    connector: RoleProcess
    cloud_admins: dict[str, str] = field(default_factory=dict)
    connector_admins: dict[str, str] = field(default_factory=dict)
    #: The edge and the demo PBX (``hybridge.demo.edge_run.CallPath``), once started.
    call_path: Any = None

    @property
    def cloud_dir(self) -> Path:
        return self.work / "cloud"

    @property
    def connector_dir(self) -> Path:
        return self.work / "connector"

    def stop(self) -> None:
        if self.call_path is not None:
            self.call_path.stop()
        for role in (self.connector, self.cloud):
            role.stop()


def start_cloud(
    work: Path,
    pki: DemoPki,
    *,
    port: int | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    cert_ca: Path | None = None,
    env: dict[str, str] | None = None,
    sip_port: int | None = None,
    sip_trust: Path | None = None,
) -> RoleProcess:
    """Start ``hybridge cloud serve`` on 127.0.0.1 with the demo PKI.

    ``cert``/``key`` replace the demo server certificate; ``cert_ca`` is then a CA file that
    verifies it, for the readiness probe. ``sip_port`` also runs the call service's SIP
    peer there, with the demo ``callservice.hybridge.test`` certificate (``sip_trust``: the
    CA file edges must chain to; default the cloud's CA list).
    """
    port = port or free_port()
    url = f"https://localhost:{port}"
    args = [
        "cloud", "serve",
        "--data-dir", str(work / "cloud"),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--base-url", url,
        "--cert", str(cert or pki.cloud_cert),
        "--key", str(key or pki.cloud_key),
        "--connector-ca", str(pki.connector_ca_cert),
        "--connector-ca-key", str(pki.connector_ca_key),
        "--list-signing-key", str(pki.list_signing_key),
        "--ca-roots", str(pki.cloud_ca_roots),
    ]  # fmt: skip
    if sip_port is not None:
        args += ["--sip-port", str(sip_port), "--callservice-cert", str(pki.callservice_cert),
                 "--callservice-key", str(pki.callservice_key)]  # fmt: skip
        if sip_trust is not None:
            args += ["--sip-trust", str(sip_trust)]
    root = cert_ca or pki.root_ca
    return start_role("cloud", args, url, root, work / "cloud.log", env=env or dict(os.environ))


def start_connector(
    work: Path, pki: DemoPki, *, port: int | None = None, env: dict[str, str] | None = None
) -> RoleProcess:
    """Start ``hybridge connector serve`` on 127.0.0.1 with the demo PKI's bootstrap set."""
    port = port or free_port()
    url = f"https://localhost:{port}"
    args = [
        "connector", "serve",
        "--data-dir", str(work / "connector"),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--base-url", url,
        "--cert", str(pki.connector_cert),
        "--key", str(pki.connector_key),
        "--bootstrap-ca-file", str(pki.bootstrap_bundle),
    ]  # fmt: skip
    return start_role(
        "connector", args, url, pki.root_ca, work / "connector.log", env=env or dict(os.environ)
    )


def create_cloud_admin(work: Path, org: str, email: str, password: str) -> None:
    """``hybridge cloud admin create`` (password on stdin)."""
    run_command(
        ["cloud", "admin", "create", "--org", org, "--email", email, "--password-stdin",
         "--data-dir", str(work / "cloud")],
        stdin=password + "\n",
    )  # fmt: skip


def create_connector_admin(work: Path, login: str, password: str) -> None:
    """``hybridge connector admin create`` (password on stdin)."""
    run_command(
        ["connector", "admin", "create", "--login", login, "--password-stdin",
         "--data-dir", str(work / "connector")],
        stdin=password + "\n",
    )  # fmt: skip


def start_stack(
    work: Path,
    *,
    cloud_port: int | None = None,
    connector_port: int | None = None,
    sip_port: int | None = None,
    sip_trust: Path | None = None,
) -> DemoStack:
    """Demo PKI, both roles, and one demo admin on each side (random passwords).

    Raises:
        DemoRunError, DemoPkiError: something did not start.
    """
    work.mkdir(parents=True, exist_ok=True)
    pki, _ = init_demo_pki(work / "pki")
    cloud_password = secrets.token_urlsafe(12)
    connector_password = secrets.token_urlsafe(12)
    create_cloud_admin(work, "Demo Org", "admin@demo.test", cloud_password)
    create_connector_admin(work, "admin", connector_password)
    cloud = start_cloud(work, pki, port=cloud_port, sip_port=sip_port, sip_trust=sip_trust)
    try:
        connector = start_connector(work, pki, port=connector_port)
    except DemoRunError:
        cloud.stop()
        raise
    return DemoStack(
        work,
        pki,
        cloud,
        connector,
        {"admin@demo.test": cloud_password},
        {"admin": connector_password},
    )


def run_full_demo(
    work: Path,
    *,
    cloud_port: int = 8443,
    connector_port: int = 9443,
    sip_port: int = 5063,
    edge_cloud_port: int = 5062,
    edge_traversal_port: int = 7001,
    premises_port: int = 5070,
) -> None:
    """Start the three roles and the demo PBX, place a test call, print what a new user
    needs, wait for Ctrl-C, stop everything."""
    # The call path lives outside the connector package (it starts the edge and the PBX);
    # imported here, when the demo runs, since it builds on this module.
    from hybridge.demo.edge_run import (
        describe_call,
        place_test_call,
        prepare_org_edge,
        start_call_path,
    )

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (a service manager, ``kill``) stops every role like Ctrl-C does, from the
    # start: the roles' setup takes a while, and a stop meanwhile must not orphan them.
    signal.signal(signal.SIGTERM, _stop)
    print(f"starting the demo in {work} ...", flush=True)
    # The demo PKI is kept between runs (a root imported into a browser stays valid); the
    # roles' data starts afresh, so every run begins unregistered with new demo passwords.
    for stale in ("cloud", "connector", "edge", "edge-identity"):
        shutil.rmtree(work / stale, ignore_errors=True)
    pki, _ = init_demo_pki(work / "pki")
    identity, sip_trust = prepare_org_edge(work, pki)
    stack = start_stack(
        work,
        cloud_port=cloud_port,
        connector_port=connector_port,
        sip_port=sip_port,
        sip_trust=sip_trust,
    )
    try:
        stack.call_path = start_call_path(
            work, stack.pki, identity, callservice_port=sip_port, edge_cloud_port=edge_cloud_port,
            edge_traversal_port=edge_traversal_port, premises_port=premises_port,
        )  # fmt: skip
        # The traversal client dials the edge a moment after it is configured: retry.
        attempts = 15 if stack.call_path.traversal_configured else 1
        report = place_test_call(work, stack.pki, trust=sip_trust, attempts=attempts)
        call_text = describe_call(report, stack.call_path)
    except (HybridgeError, OSError) as exc:
        call_text = f"Test call: not placed, the call path did not start: {exc}"
    except BaseException:
        stack.stop()
        raise
    manual_note = (
        "\n Its trust store holds one manual anchor already: the demo organisation's own edge "
        "CA,\n uploaded so that its traversal client can verify the edge before registration."
        if stack.call_path is not None and stack.call_path.traversal_configured
        else ""
    )
    ((cloud_login, cloud_password),) = stack.cloud_admins.items()
    ((connector_login, connector_password),) = stack.connector_admins.items()
    edge_line = (
        f"  Edge                cloud zone 127.0.0.1:{edge_cloud_port}, traversal zone "
        f"127.0.0.1:{edge_traversal_port}\n  Cloud call service  sips:127.0.0.1:{sip_port} "
        f"(callservice.hybridge.test)\n"
        if stack.call_path is not None
        else ""
    )
    print(
        f"""
Hybridge demo is running (Ctrl-C stops every role).

  Connector admin UI  {stack.connector.url}
      login {connector_login}   password {connector_password}
  Cloud portal        {stack.cloud.url}
      login {cloud_login}   password {cloud_password}
{edge_line}
{call_text}

Place it again: hybridge cloud call --data-dir {stack.cloud_dir} --org "Demo Org"
  --to sip:alice@premises.hybridge.test --trust {sip_trust}
  --callservice-cert {stack.pki.callservice_cert} --callservice-key {stack.pki.callservice_key}

Your browser does not know the demo root CA: accept the certificate warning for both
URLs once, or import {stack.pki.root_ca} as a trusted authority.
(The connector itself trusts the cloud only through its bootstrap set:
 {stack.pki.bootstrap_bundle}.{manual_note})

Try it: open the connector, log in, go to "Cloud registration", enter
{stack.cloud.url}, keep "Let the cloud manage this connector's CA certificates"
ticked, press Register, log in on the portal, compare the key fingerprint, Approve.
Back on the connector, the trust store lists the cloud's CA certificates.

Logs: {stack.cloud.log_path}  {stack.connector.log_path}  {work / "edge.log"}
""",
        flush=True,
    )

    try:
        while stack.cloud.process.poll() is None and stack.connector.process.poll() is None:
            time.sleep(0.5)
        print("a role stopped; see its log", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        stack.stop()
