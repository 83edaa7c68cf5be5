"""Run Debian's Kamailio (with ``kamailio-tls-modules``) as a real SIP peer of the edge.

Kamailio is configured in a temporary directory: its TLS module presents a certificate
from the test PKI and verifies the edge's against the same root. ``scripts/install-system-
deps`` installs both packages, so a missing Kamailio is a failure, never a skip.
"""

from __future__ import annotations

import errno
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgekit import Identity


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bound(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
        return False


@dataclass
class Kamailio:
    """A running Kamailio; ``lines`` collects its log (stderr)."""

    proc: subprocess.Popen[str]
    udp_port: int
    tls_port: int
    lines: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def tls_config(identity: Identity, root: Path, *, verify_clients: bool) -> str:
    """Kamailio's tls.cfg: one identity for both roles, the test root as CA list."""
    require = "yes" if verify_clients else "no"
    return f"""
[server:default]
method = TLSv1.2+
verify_certificate = {require}
require_certificate = {require}
private_key = {identity.key}
certificate = {identity.chain}
ca_list = {root}

[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
private_key = {identity.key}
certificate = {identity.chain}
ca_list = {root}
"""


def start_kamailio(
    directory: Path,
    identity: Identity,
    root: Path,
    *,
    route: str,
    verify_clients: bool = False,
    extra_modules: tuple[str, ...] = (),
    tls_port: int | None = None,
) -> Kamailio:
    """Start ``kamailio`` in the foreground with UDP and TLS listeners on free ports.

    ``route`` is the body of ``request_route``; ``tls_port`` fixes the TLS port.
    Modules load from Kamailio's compiled-in path (no ``mpath``: it differs by architecture).
    Waits until both sockets are bound; raises ``AssertionError`` if Kamailio exits first
    (a missing ``kamailio-tls-modules`` shows there, in Kamailio's own words).
    """
    assert shutil.which("kamailio"), "kamailio is not installed: run scripts/install-system-deps"
    directory.mkdir(parents=True, exist_ok=True)
    udp_port, tls_port = free_port(socket.SOCK_DGRAM), tls_port or free_port()
    (directory / "tls.cfg").write_text(tls_config(identity, root, verify_clients=verify_clients))
    modules = "\n".join(f'loadmodule "{m}.so"' for m in ("tls", *extra_modules))
    (directory / "kamailio.cfg").write_text(
        f"""#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
enable_tls=yes
listen=udp:127.0.0.1:{udp_port}
listen=tls:127.0.0.1:{tls_port}
{modules}
modparam("tls", "config", "{directory}/tls.cfg")
request_route {{
{route}
}}
"""
    )
    argv = [
        "kamailio", "-DD", "-E", "-f", str(directory / "kamailio.cfg"),
        "-Y", str(directory), "-P", str(directory / "kamailio.pid"),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    kamailio = Kamailio(proc, udp_port, tls_port)

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            kamailio.lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("kamailio exited:\n" + "\n".join(kamailio.lines[-30:]))
        if _bound(udp_port, socket.SOCK_DGRAM) and _bound(tls_port, socket.SOCK_STREAM):
            time.sleep(0.3)  # the workers fork right after binding
            return kamailio
        time.sleep(0.05)
    kamailio.stop()
    raise AssertionError("kamailio did not bind its ports:\n" + "\n".join(kamailio.lines[-30:]))
