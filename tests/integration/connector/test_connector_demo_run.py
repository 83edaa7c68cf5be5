"""``hybridge demo --full``'s launcher: the three roles start, logins print, the test call
crosses cloud -> edge -> connector -> demo PBX and succeeds, SIGTERM stops all."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hybridge.connector.demo_run import free_port

pytestmark = pytest.mark.slow  # real role processes on loopback

SCRIPT = """
import sys
from pathlib import Path
from hybridge.connector.demo_run import run_full_demo
ports = [int(p) for p in sys.argv[2:]]
run_full_demo(Path(sys.argv[1]), cloud_port=ports[0], connector_port=ports[1], sip_port=ports[2],
              edge_cloud_port=ports[3], edge_traversal_port=ports[4], premises_port=ports[5])
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has stopped all the same.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(600)  # three roles and a dozen setup commands on a busy machine
def test_full_demo_starts_the_roles_places_a_test_call_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    cloud_port, connector_port = free_port(), free_port()
    others = [str(free_port()) for _ in range(4)]
    out = tmp_path / "demo.out"
    children: list[int] = []
    with out.open("wb") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(tmp_path / "work"), str(cloud_port),
             str(connector_port), *others],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # three roles, their setup commands, one call
        while "Logs:" not in out.read_text() and time.monotonic() < deadline:
            assert demo.poll() is None, out.read_text()
            time.sleep(0.2)
        text = out.read_text()
        assert f"Connector admin UI  https://localhost:{connector_port}" in text
        assert f"Cloud portal        https://localhost:{cloud_port}" in text
        # The test call went cloud -> edge -> connector -> the demo PBX and back.
        assert "<- 180 Ringing (INVITE)" in text and "<- 200 OK (BYE)" in text, text
        assert "  OK: answered by the demo PBX through the edge and the connector's" in text
        connector_password = re.search(r"login admin   password (\S+)", text)
        assert connector_password
        # Both answer over TLS verified by the demo root; the printed login works.
        context = ssl.create_default_context(cafile=str(tmp_path / "work/pki/root-ca.pem"))
        with httpx.Client(base_url=f"https://localhost:{connector_port}", verify=context) as web:
            page = web.get("/login")
            token = re.findall(r'name="csrf_token" value="([^"]*)"', page.text)[-1]
            login = web.post(
                "/login",
                data={"login": "admin", "password": connector_password.group(1),
                      "csrf_token": token},
            )  # fmt: skip
            assert login.status_code == 303 and login.headers["location"] == "/trust"
        assert httpx.get(f"https://localhost:{cloud_port}/healthz", verify=context).is_success
        children += [
            int(line.split()[0])
            for line in subprocess.run(
                ["ps", "-o", "pid=,ppid=", "-e"], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            if int(line.split()[1]) == demo.pid
        ]
        assert len(children) == 3  # cloud, connector, edge (the demo PBX is a thread)
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(30)
    assert "stopping" in out.read_text()
    assert not [pid for pid in children if _alive(pid)]
