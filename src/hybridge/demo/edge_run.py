"""The demo's call path: the edge, a small premises PBX, and one test call across them.

``hybridge demo --full`` (``connector.demo_run.run_full_demo``) starts the cloud with its
call-service SIP peer (``--sip-port``) and the connector, then this module:

0. (``prepare_org_edge``, before the cloud starts) gives the edge a certificate from the
   organisation's own CA (``demo.pki.issue_org_edge``), and the cloud's call service a
   trust file holding the demo root and that CA (``--sip-trust``): the connector can then
   trust the edge before registration by a manual upload of that CA, while the demo root
   still reaches it through the cloud's push;
1. prepares the edge's data directory with the same commands an admin would run:
   ``hybridge trust add`` (the demo root: the edge's own trust store), ``hybridge edge zone
   add cloud --kind dns --subject-name callservice.hybridge.test --peer <call service>``
   and ``hybridge edge zone add connector --kind traversal --subject-name
   connector.hybridge.test``;
2. starts ``hybridge edge serve`` with the demo PKI's edge certificate and waits for its
   "edge listening" line (bounded);
3. tells the cloud which edge is Demo Org's (``hybridge cloud edge set``);
4. starts the demo PBX (``demo.premises``) and, when the connector's traversal client is
   available, uploads the organisation's edge CA to the connector's trust store (``hybridge
   trust add``) and points the client at the edge and the PBX (``hybridge connector
   traversal set``);
5. places one test call with ``hybridge cloud call --json`` and returns its report.

Every step is a ``hybridge`` command in a child process: the roles meet only over the
network, as in production.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridge.connector.demo_run import START_TIMEOUT, DemoRunError, RoleProcess, run_command
from hybridge.demo.pki import (
    CALLSERVICE_DNS,
    EDGE_DNS,
    DemoPki,
    OrgEdgeIdentity,
    issue_org_edge,
)
from hybridge.demo.premises import PremisesServer

DEMO_ORG = "Demo Org"


def hybridge_argv(*args: str) -> list[str]:
    """``python -m hybridge ARGS`` with this interpreter."""
    return [sys.executable, "-m", "hybridge", *args]


CONNECTOR_NAME = "connector.hybridge.test"
#: The callee of the demo's test call, at the premises.
TEST_CALL_TO = "sip:alice@premises.hybridge.test"


@dataclass
class CallPath:
    """The edge process, the demo PBX, and whether the connector's traversal is set up."""

    edge: RoleProcess
    premises: PremisesServer
    edge_cloud_port: int
    edge_traversal_port: int
    traversal_configured: bool
    traversal_note: str

    def stop(self) -> None:
        self.premises.stop()
        self.edge.stop()


def prepare_org_edge(work: Path, pki: DemoPki) -> tuple[OrgEdgeIdentity, Path]:
    """Step 0: the edge's identity in ``WORK/edge-identity`` and the call service's trust
    file (demo root + organisation's edge CA). Raises ``DemoPkiError``."""
    identity = issue_org_edge(work / "edge-identity")
    bundle = identity.directory / "callservice-trust.pem"
    bundle.write_bytes(pki.root_ca.read_bytes() + identity.ca_cert.read_bytes())
    return identity, bundle


def _wait_for_line(role: RoleProcess, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in role.log_text():
            return
        if role.process.poll() is not None:
            raise DemoRunError(f"the {role.name} exited at start: {role.log_text()[-1500:]}")
        time.sleep(0.1)
    role.stop()
    raise DemoRunError(f"the {role.name} did not start in {timeout}s: {role.log_text()[-1500:]}")


def start_edge(
    work: Path,
    pki: DemoPki,
    identity: OrgEdgeIdentity,
    *,
    callservice_port: int,
    cloud_port: int,
    traversal_port: int,
    env: dict[str, str] | None = None,
) -> RoleProcess:
    """Prepare ``WORK/edge`` (trust store, zones) and start ``hybridge edge serve``.

    Raises:
        DemoRunError: a setup command failed, or the edge did not start in time.
    """
    directory = str(work / "edge")
    run_command(["trust", "add", "--data-dir", directory, str(pki.root_ca)], env=env)
    run_command(
        ["edge", "zone", "add", "cloud", "--kind", "dns", "--subject-name", CALLSERVICE_DNS,
         "--peer", f"127.0.0.1:{callservice_port}", "--data-dir", directory],
        env=env,
    )  # fmt: skip
    run_command(
        ["edge", "zone", "add", "connector", "--kind", "traversal", "--subject-name",
         CONNECTOR_NAME, "--data-dir", directory],
        env=env,
    )  # fmt: skip
    log_path = work / "edge.log"
    args = [
        "edge", "serve", "--data-dir", directory, "--host", "127.0.0.1",
        "--cert", str(identity.edge_cert), "--key", str(identity.edge_key),
        "--cloud-port", str(cloud_port), "--traversal-port", str(traversal_port),
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            hybridge_argv(*args), stdout=log, stderr=subprocess.STDOUT, env=env or dict(os.environ)
        )
    role = RoleProcess("edge", f"sips:127.0.0.1:{cloud_port}", process, log_path)
    _wait_for_line(role, "edge listening", START_TIMEOUT)
    return role


def _configure_traversal(
    work: Path,
    pki: DemoPki,
    identity: OrgEdgeIdentity,
    traversal_port: int,
    premises_port: int,
    env: dict[str, str] | None,
) -> tuple[bool, str]:
    """Point the connector's traversal client at the edge and the PBX, if it exists."""
    probe = subprocess.run(
        hybridge_argv("connector", "traversal", "--help"),
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return False, "this build has no connector traversal client yet"
    connector_dir = str(work / "connector")
    # The seed's manual upload: the organisation's own CA, for its edge.
    run_command(["trust", "add", "--data-dir", connector_dir, str(identity.ca_cert)], env=env)
    run_command(
        ["connector", "traversal", "set", "--data-dir", connector_dir,
         "--edge", f"127.0.0.1:{traversal_port}", "--edge-name", EDGE_DNS,
         "--premises", f"sip:127.0.0.1:{premises_port};transport=tcp",
         "--cert", str(pki.connector_cert), "--key", str(pki.connector_key)],
        env=env,
    )  # fmt: skip
    return True, "the connector's traversal client holds the connection to the edge"


def start_call_path(
    work: Path,
    pki: DemoPki,
    identity: OrgEdgeIdentity,
    *,
    callservice_port: int,
    edge_cloud_port: int,
    edge_traversal_port: int,
    premises_port: int = 0,
    with_traversal: bool = True,
    env: dict[str, str] | None = None,
) -> CallPath:
    """Steps 1-4 of the module docstring. Raises ``DemoRunError`` or ``OSError``."""
    edge = start_edge(
        work, pki, identity, callservice_port=callservice_port, cloud_port=edge_cloud_port,
        traversal_port=edge_traversal_port, env=env,
    )  # fmt: skip
    premises = PremisesServer(port=premises_port)
    try:
        run_command(
            ["cloud", "edge", "set", "--org", DEMO_ORG, "--subject-name", EDGE_DNS,
             "--address", f"127.0.0.1:{edge_cloud_port}", "--data-dir", str(work / "cloud")],
            env=env,
        )  # fmt: skip
        premises.start()
        configured, note = False, "traversal not requested"
        if with_traversal:
            configured, note = _configure_traversal(
                work, pki, identity, edge_traversal_port, premises.port, env
            )
    except BaseException:
        premises.stop()
        edge.stop()
        raise
    return CallPath(edge, premises, edge_cloud_port, edge_traversal_port, configured, note)


def place_test_call(
    work: Path,
    pki: DemoPki,
    *,
    trust: Path | None = None,
    attempts: int = 1,
    retry_delay: float = 2.0,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``hybridge cloud call --json`` to Demo Org's edge; returns the report.

    ``trust``: the CA file the edge's certificate must chain to (the call service's
    ``--sip-trust``); default the cloud's published CA list.

    With ``attempts`` above 1, a call that fails is placed again after ``retry_delay``
    (the traversal client needs a moment to dial the edge after it is configured).

    Raises:
        DemoRunError: the command failed before placing a call (no report).
    """
    args = [
        "cloud", "call", "--org", DEMO_ORG, "--to", TEST_CALL_TO,
        "--data-dir", str(work / "cloud"),
        "--callservice-cert", str(pki.callservice_cert),
        "--callservice-key", str(pki.callservice_key),
        "--via-host", CALLSERVICE_DNS, "--json",
    ]  # fmt: skip
    if trust is not None:
        args += ["--trust", str(trust)]
    report: dict[str, Any] = {}
    for attempt in range(attempts):
        done = subprocess.run(
            hybridge_argv(*args), capture_output=True, text=True, timeout=120, env=env,
            check=False,
        )  # fmt: skip
        if not done.stdout.strip().startswith("{"):
            raise DemoRunError(f"hybridge cloud call failed: {done.stderr.strip()[-800:]}")
        report = json.loads(done.stdout)
        if report.get("ok") or attempt == attempts - 1:
            break
        time.sleep(retry_delay)
    return report


def describe_call(report: dict[str, Any], path: CallPath) -> str:
    """The demo's printout of a test call: each step with its time, then the verdict."""
    lines = [f"Test call: Demo Org's cloud call service -> edge -> {report['to']}"]
    for step in report.get("steps", []):
        arrow = "->" if step["direction"] == "sent" else "<-"
        lines.append(f"  {step['at_ms']:>8.1f} ms  {arrow} {step['message']}")
    if report["ok"]:
        lines.append(
            "  OK: answered by the demo PBX through the edge and the connector's traversal "
            "connection; " + report["reason"]
        )
    elif "503" in report["reason"] and not path.traversal_configured:
        lines.append(
            "  STOPPED AT THE EDGE'S TRAVERSAL ZONE: the call service and the edge trusted "
            "each other (mutual TLS, names checked both ways) and the edge relayed nothing "
            f"further because no connector holds its traversal connection ({path.traversal_note})."
        )
    else:
        lines.append("  FAILED: " + report["reason"])
    return "\n".join(lines)
