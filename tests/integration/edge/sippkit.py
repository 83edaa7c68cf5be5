"""SIPp as a load generator for the edge, with stunnel as its TLS leg.

Debian's SIPp (``sip-tester`` 3.6.1) is built without TLS, so SIPp speaks plain TCP to a
``stunnel4`` client on loopback, and stunnel carries each TCP connection over mutual TLS to
the edge: it presents a certificate from the test PKI (the cloud's call-service one, or a
wrong one for the rejecting twins) and verifies the edge's chain and name
(``verifyChain``/``checkHost``). One TCP connection from SIPp is one TLS connection to
the edge, so ``-t t1`` is one persistent connection and ``-t tn`` one per call.

- ``start_stunnel`` / ``running_stunnel``: stunnel in the foreground, its log collected;
- ``start_sipp`` (then ``SippProcess.wait``): SIPp with bounded timeouts, its statistics
  written as CSV (``-trace_stat``) and its unexpected messages to an error file
  (``-trace_err``), read back as a ``SippResult`` once it exits.

``scripts/install-system-deps`` installs both packages, so a missing one is a failure,
never a skip. Nothing is mocked: real processes, real TLS on 127.0.0.1.
"""

from __future__ import annotations

import csv
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edgekit import Identity

# kamkit's port probe: a bind that fails with EADDRINUSE means something listens there.
from kamkit import _bound, free_port

#: Our scenarios (``-sf``); SIPp's built-in ones go by name (``-sn uac``).
SCENARIOS = Path(__file__).resolve().parent / "scenarios"

STUNNEL = "stunnel4"
SIPP = "sipp"


@dataclass
class Stunnel:
    """A running stunnel client: SIPp connects to ``port`` (plain TCP) on 127.0.0.1."""

    proc: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def stunnel_config(
    identity: Identity, root: Path, *, listen: int, connect: int, verify_name: str
) -> str:
    """stunnel's configuration: a TLS client from ``127.0.0.1:listen`` to ``connect``."""
    # verifyChain: the edge's chain must reach the test root (``CAfile``); checkHost: and
    # carry ``verify_name`` (RFC 6125 rules, in OpenSSL's X509_check_host). Without both,
    # stunnel would talk to any server, and the test would prove nothing about mutual TLS.
    # reset = no: when the TLS side fails, close SIPp's connection with a FIN, not a TCP
    # reset; SIPp 3.6 counts a closed connection as a failed call (FailedTcpClosed) but
    # treats a reset as a fatal error and stops the whole run (exit 255).
    # TIMEOUTclose = 0: on a close from either side, do not wait for the TLS close_notify.
    return f"""foreground = yes
syslog = no
pid =
debug = 5
[edge]
client = yes
accept = 127.0.0.1:{listen}
connect = 127.0.0.1:{connect}
cert = {identity.chain}
key = {identity.key}
CAfile = {root}
verifyChain = yes
checkHost = {verify_name}
sni = {verify_name}
sslVersionMin = TLSv1.2
TIMEOUTconnect = 5
TIMEOUTclose = 0
reset = no
"""


def start_stunnel(
    directory: Path,
    identity: Identity,
    root: Path,
    *,
    connect: int,
    verify_name: str,
    timeout: float = 15.0,
) -> Stunnel:
    """Start ``stunnel4`` in the foreground as a TLS client of ``127.0.0.1:connect``.

    ``identity`` is the client certificate it presents; the server must chain to ``root``
    and carry ``verify_name``. Returns once stunnel says its configuration loaded and its
    port is listening; raises ``AssertionError`` (with stunnel's log) if it exits first or
    does not come up within ``timeout`` seconds.
    """
    assert shutil.which(STUNNEL), "stunnel4 is not installed: run scripts/install-system-deps"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / "stunnel.conf"
    config.write_text(
        stunnel_config(identity, root, listen=port, connect=connect, verify_name=verify_name)
    )
    proc = subprocess.Popen(
        [STUNNEL, str(config)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    tunnel = Stunnel(proc, port)

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            tunnel.lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            time.sleep(0.1)  # let the pump read the last lines
            raise AssertionError(f"stunnel exited ({proc.returncode}):\n{tunnel.log()}")
        loaded = any("Configuration successful" in line for line in list(tunnel.lines))
        if loaded and _bound(port, socket.SOCK_STREAM):
            return tunnel
        time.sleep(0.02)
    tunnel.stop()
    raise AssertionError(f"stunnel did not come up:\n{tunnel.log()}")


@contextmanager
def running_stunnel(
    directory: Path, identity: Identity, root: Path, *, connect: int, verify_name: str
) -> Iterator[Stunnel]:
    """``start_stunnel``, stopped on exit."""
    tunnel = start_stunnel(directory, identity, root, connect=connect, verify_name=verify_name)
    try:
        yield tunnel
    finally:
        tunnel.stop()


@dataclass(frozen=True)
class SippResult:
    """What one SIPp run reported: its exit status, its last statistics row, its files.

    SIPp's exit status: 0 every call succeeded, 1 at least one failed, 97 stopped by an
    internal command, 99 no call processed, 255 a fatal error.
    """

    returncode: int
    stats: dict[str, str]
    errors: str
    output: str
    wall_seconds: float

    def count(self, column: str) -> int:
        """A cumulative counter of the statistics CSV, e.g. ``count("FailedCall")``."""
        return int(self.stats.get(f"{column}(C)", "0") or 0)

    @property
    def created(self) -> int:
        return int(self.stats.get("TotalCallCreated", "0") or 0)

    @property
    def successful(self) -> int:
        return self.count("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.count("FailedCall")

    @property
    def rate(self) -> float:
        """Completed calls per second of SIPp's wall time (its own ``CallRate`` counts
        created calls over whole seconds, too coarse for a short run)."""
        return self.successful / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def response_ms(self) -> float:
        """The mean response time SIPp measured (``rtd="true"``), in milliseconds."""
        text = self.stats.get("ResponseTime1(C)", "00:00:00:000000")
        hours, minutes, seconds, micros = (int(part) for part in text.split(":"))
        return ((hours * 60 + minutes) * 60 + seconds) * 1000 + micros / 1000

    def counts(self) -> str:
        """Exit status and call counts, for assertion messages."""
        return (
            f"exit {self.returncode}: {self.created} created, {self.successful} successful, "
            f"{self.failed} failed"
        )

    def describe(self) -> str:
        """``counts`` with the timing figures (meaningful for the side that sets the pace)."""
        return (
            f"{self.counts()} in {self.wall_seconds:.1f} s ({self.rate:.1f} calls/s, "
            f"mean response {self.response_ms():.1f} ms)"
        )


@dataclass
class SippProcess:
    """A running SIPp; ``wait`` collects its result."""

    proc: subprocess.Popen[bytes]
    name: str
    directory: Path
    port: int
    timeout: float
    started: float

    def wait(self, grace: float = 15.0) -> SippResult:
        """The run's ``SippResult`` once SIPp exits; killed, and the test failed, when it
        is still running ``grace`` seconds past its own ``-timeout``."""
        limit = self.timeout + grace
        try:
            returncode = self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError(
                f"sipp {self.name} still running after {limit} s:\n{self._read('out')[-3000:]}"
            ) from None
        wall = time.monotonic() - self.started
        return SippResult(
            returncode, self._last_stats(), _call_errors(self._read("err")), self._read("out"), wall
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def _read(self, suffix: str) -> str:
        path = self.directory / f"{self.name}.{suffix}"
        return path.read_text(errors="replace") if path.exists() else ""

    def _last_stats(self) -> dict[str, str]:
        path = self.directory / f"{self.name}.csv"
        if not path.exists():
            return {}
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle, delimiter=";"))
        # The header row, then one row per ``-fd`` period and a final one at exit.
        return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) > 1 else {}


def _call_errors(text: str) -> str:
    """SIPp's error file without its scheduler warnings ("Overload warning: the minor
    watchdog timer 500ms has been tripped"): those say SIPp itself was starved of CPU on a
    loaded machine, not that any message of a call was unexpected."""
    return "".join(line for line in text.splitlines(keepends=True) if "watchdog timer" not in line)


def start_sipp(
    directory: Path,
    name: str,
    *,
    scenario: str,
    remote: int | None = None,
    transport: str = "t1",
    calls: int,
    rate: float = 10.0,
    timeout: float = 30.0,
    recv_timeout_ms: int = 5000,
    port: int | None = None,
    extra: Sequence[str] = (),
) -> SippProcess:
    """Start ``sipp`` on 127.0.0.1 running ``scenario`` for ``calls`` calls.

    ``scenario`` is a file under ``scenarios/`` (``"uac_routed.xml"``) or a built-in name
    (``"uac"``). ``remote`` is the port of the peer (stunnel's for a UAC); ``None`` runs a
    server (a UAS) listening on ``port`` (a free one when not given). ``rate`` is in calls
    per second; ``extra`` adds SIPp options (``-d 200``). SIPp gives up after ``timeout``
    seconds (``-timeout_error``: a failure) and fails a call that waits more than
    ``recv_timeout_ms`` for a message, so a lost message cannot hang the test.
    """
    assert shutil.which(SIPP), "sipp is not installed: run scripts/install-system-deps"
    directory.mkdir(parents=True, exist_ok=True)
    local = port or free_port()
    chosen = ["-sf", str(SCENARIOS / scenario)] if scenario.endswith(".xml") else ["-sn", scenario]
    argv = [
        # -bind_local: listen on 127.0.0.1 only, never on every address.
        SIPP, *chosen, "-t", transport, "-i", "127.0.0.1", "-bind_local", "-p", str(local),
        "-m", str(calls), "-r", str(rate),
        "-timeout", f"{timeout:g}s", "-timeout_error", "-recv_timeout", str(recv_timeout_ms),
        # -nostdin: no terminal here; its keyboard commands would read the pipe.
        "-nostdin",
        # SIPp refuses -t tn while its default socket cap (50000) exceeds the open-file limit.
        "-max_socket", "1000",
        "-trace_stat", "-stf", str(directory / f"{name}.csv"), "-fd", "1",
        "-trace_err", "-error_file", str(directory / f"{name}.err"),
        *extra,
    ]  # fmt: skip
    if remote is not None:
        argv.append(f"127.0.0.1:{remote}")
    with (directory / f"{name}.out").open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=directory)
    return SippProcess(proc, name, directory, local, timeout, time.monotonic())


def wait_listening(process: SippProcess, timeout: float = 10.0) -> None:
    """Return once a SIPp server accepts TCP connections on its port (probed by binding:
    a probe connection would count as a peer); else fail with its output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise AssertionError(f"sipp {process.name} exited:\n{process._read('out')[-3000:]}")
        if _bound(process.port, socket.SOCK_STREAM):
            return
        time.sleep(0.02)
    raise AssertionError(f"sipp {process.name} never listened on {process.port}")
