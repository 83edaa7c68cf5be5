"""The edge's relay against Kamailio doing the same work, in the same run.

Work, identical for both servers: TLS 1.3, ECDSA P-256 certificates, mutual TLS with the
client certificate verified against a test root, each OPTIONS relayed statelessly to a UAS
that answers 200, and the 200 relayed back to the client. The edge additionally checks the
client's name against its DNS zone (``core.tlsverify``), as in production; Kamailio checks
``$tls_peer_subject_cn`` in its route (its nearest equivalent, one string compare).

- (a) new mutual-TLS connections per second (6 dialers), each carrying one OPTIONS and
  its 200;
- (b) OPTIONS transactions per second over 4 persistent TLS connections, 8 in flight each.

The server under test is pinned to core 0 (``taskset``), the load generator and the UAS to
core 1; Kamailio runs as Debian ships it with ``-x fm -X fm`` (its default allocator makes
TLS slower) and one TLS worker. The generator is Python: where it, not the server, is the
bottleneck the figures say so — each result prints the server's and the generator's CPU
use (a server below ~90% of its core was not saturated, and its figure is a lower bound).
Each figure is printed twice: the wall-clock rate, and the rate per CPU-second of the
server (what other load on a shared machine does not distort). Nothing here is pass/fail;
compare ratios.

    .venv/bin/python bench/edge.py [--seconds 5] [--rounds 3]

With ``--rounds N`` the whole run (both servers, both measurements) is repeated and the
range of the ratios printed: on a shared machine one round can be far off.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLOUD = "callservice.example.test"
SERVER_CORE, LOAD_CORE = 0, 1


# -- certificates -------------------------------------------------------------------------


def _cert(
    name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, *, ca: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def write_pki(directory: Path) -> dict[str, Path]:
    """Root, and leaves for the cloud client, the edge/Kamailio server and the UAS."""
    root = _cert("Bench Root", None, ca=True)
    files = {"root": directory / "root.pem"}
    files["root"].write_bytes(root[0].public_bytes(Encoding.PEM))
    for stem, name in (("cloud", CLOUD), ("server", "edge.example.test"),
                       ("uas", "connector.example.test")):  # fmt: skip
        cert, key = _cert(name, root, ca=False)
        files[stem] = directory / f"{stem}.pem"
        files[stem].write_bytes(cert.public_bytes(Encoding.PEM))
        files[f"{stem}.key"] = directory / f"{stem}.key"
        files[f"{stem}.key"].write_bytes(
            key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        )
    return files


def _context(files: dict[str, Path], stem: str, *, server: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(str(files["root"]))
    context.load_cert_chain(str(files[stem]), str(files[f"{stem}.key"]))
    return context


# -- the UAS and the load generator (run in child processes pinned to LOAD_CORE) ------------


def _answer(request: bytes) -> bytes:
    lines = request.split(b"\r\n")
    keep = [
        line
        for line in lines[1:]
        if line[:4].lower() in (b"via:", b"from", b"to: ", b"call", b"cseq")
    ]
    return b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep) + b"\r\nContent-Length: 0\r\n\r\n"


async def _uas_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    buffer = b""
    while data := await reader.read(65536):
        buffer += data
        out = []
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            message, buffer = buffer[:end], buffer[end + 4 :]
            if message.startswith(b"OPTIONS"):
                out.append(_answer(message))
        if out:
            writer.write(b"".join(out))


def uas_main(files: dict[str, Path], mode: str, port: int, ready: mp.Event) -> None:  # type: ignore[type-arg]
    """The UAS: dial the edge's traversal port (``mode == 'dial'``) or listen for Kamailio."""
    os.sched_setaffinity(0, {LOAD_CORE})

    async def main() -> None:
        if mode == "dial":
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=_context(files, "uas", server=False)
            )
            writer.write(b"\r\n\r\n")
            await reader.readexactly(2)  # the pong: admitted
            ready.set()
            await _uas_session(reader, writer)
        else:
            server = await asyncio.start_server(
                _uas_session, "127.0.0.1", port, ssl=_context(files, "uas", server=True)
            )
            ready.set()
            await server.serve_forever()

    asyncio.run(main())


def _options_template(target: str) -> bytes:
    """An OPTIONS with ``%d`` where the per-request number goes (branch and Call-ID)."""
    return (
        f"OPTIONS sip:uas@{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 127.0.0.1:5061;rport;branch=z9hG4bK{os.getpid()}x%d\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:bench@example.test>;tag=b1\r\n"
        f"To: <sip:uas@{target}>\r\nCall-ID: {os.getpid()}-%d\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _connect(context: ssl.SSLContext, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), 5)
    # as SIP stacks do: no Nagle, so a request is not held behind the handshake's last ACK
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return context.wrap_socket(raw)


def load_main(files: dict[str, Path], mode: str, port: int, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One generator process: count completed OPTIONS transactions until the deadline."""
    os.sched_setaffinity(0, {LOAD_CORE})
    context = _context(files, "cloud", server=False)
    # The generator's own cost per request matters (it shares one core): one %-format each.
    template = _options_template("premises.example.test")
    deadline = time.monotonic() + seconds
    done = errors = 0
    if mode == "connect":
        while time.monotonic() < deadline:
            try:
                with _connect(context, port) as tls:
                    tls.sendall(template % (done, done))
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = tls.recv(4096)
                        if not chunk:
                            raise ConnectionError("closed")
                        data += chunk
                    done += data.startswith(b"SIP/2.0 200")
            except (OSError, ssl.SSLError):
                errors += 1
    else:
        with _connect(context, port) as tls:
            tls.settimeout(5)
            sent = 0
            tls.sendall(b"".join(template % (i, i) for i in range(8)))
            sent = 8
            tail = b""
            while time.monotonic() < deadline:
                data = tail + tls.recv(65536)
                count = data.count(b"\r\n\r\n")
                tail = data[data.rfind(b"\r\n\r\n") + 4 :] if count else data
                done += count
                if count:
                    tls.sendall(b"".join(template % (sent + i, sent + i) for i in range(count)))
                    sent += count
    out.put((done, errors, time.process_time()))


# -- the servers -----------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` (and their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_edge(files: dict[str, Path], directory: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    from hybridge.edge.service import open_zone_store
    from hybridge.edge.zones import Zone, ZoneKind
    from hybridge.truststore import CertificateSource, open_trust_store

    with open_trust_store(directory) as trust:
        trust.add_manual([CertificateSource("root", files["root"].read_bytes())], actor="bench")
    with open_zone_store(directory) as zones:
        zones.add(Zone("cloud", ZoneKind.DNS, CLOUD), actor="bench")
        zones.add(Zone("connector", ZoneKind.TRAVERSAL, "connector.example.test"), actor="bench")
    cloud, traversal = free_port(), free_port()
    argv = [
        "taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "hybridge", "edge", "serve",
        "--data-dir", str(directory), "--cert", str(files["server"]),
        "--key", str(files["server.key"]), "--cloud-port", str(cloud),
        "--traversal-port", str(traversal),
    ]  # fmt: skip
    log = (directory / "edge.log").open("w")
    proc = subprocess.Popen(argv, stderr=log, stdout=subprocess.DEVNULL)
    try:
        wait_port(cloud)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(
            "the edge did not start:\n" + (directory / "edge.log").read_text()[-2000:]
        ) from None
    return proc, cloud, traversal


def start_kamailio(
    files: dict[str, Path], directory: Path, uas_port: int
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (directory / "tls.cfg").write_text(
        f"""[server:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
private_key = {files["server.key"]}
certificate = {files["server"]}
ca_list = {files["root"]}

[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
private_key = {files["server.key"]}
certificate = {files["server"]}
ca_list = {files["root"]}
"""
    )
    (directory / "kamailio.cfg").write_text(
        f"""#!KAMAILIO
debug=0
log_stderror=yes
children=1
tcp_children=1
enable_tls=yes
listen=tls:127.0.0.1:{port}
loadmodule "tls.so"
modparam("tls", "config", "{directory}/tls.cfg")
request_route {{
    if ($tls_peer_subject_cn != "{CLOUD}") {{
        drop;
    }}
    forward_tls("127.0.0.1", {uas_port});
}}
"""
    )
    argv = [
        "taskset", "-c", str(SERVER_CORE), "kamailio", "-DD", "-E", "-x", "fm", "-X", "fm",
        "-m", "256", "-f", str(directory / "kamailio.cfg"), "-Y", str(directory),
        "-P", str(directory / "kamailio.pid"),
    ]  # fmt: skip
    log = (directory / "kamailio.log").open("w")
    proc = subprocess.Popen(argv, stderr=log, stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(
            "kamailio did not start:\n" + (directory / "kamailio.log").read_text()[-2000:]
        ) from None
    return proc, port


# -- measuring -------------------------------------------------------------------------------


def measure(
    files: dict[str, Path], port: int, server_pids: list[int], mode: str, seconds: float
) -> dict[str, float]:
    # (a): enough concurrent dialers that latency does not cap the rate
    workers = 4 if mode == "persistent" else 6
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [
        mp.Process(target=load_main, args=(files, mode, port, seconds, out)) for _ in range(workers)
    ]
    server_before = cpu_seconds(server_pids)
    started = time.monotonic()
    for proc in procs:
        proc.start()
    results = [out.get(timeout=seconds + 30) for _ in procs]
    elapsed = time.monotonic() - started
    for proc in procs:
        proc.join(timeout=10)
    server_cpu = cpu_seconds(server_pids) - server_before
    done = sum(r[0] for r in results)
    return {
        "rate": done / seconds,
        "errors": sum(r[1] for r in results),
        "server_cpu": server_cpu / elapsed,
        # the generators share LOAD_CORE: their CPU seconds over the wall time
        "load_cpu": sum(r[2] for r in results) / elapsed,
    }


def _per_cpu(result: dict[str, float]) -> float:
    # Work per CPU-second of the server: on a shared machine where the server does not get
    # its whole core, this is the figure that other load does not distort.
    return result["rate"] / result["server_cpu"] if result["server_cpu"] else 0.0


LABELS = {
    "connect": "(a) new mTLS connections/s, one relayed OPTIONS each",
    "persistent": "(b) relayed OPTIONS/s, 4 persistent connections x 8 in flight",
}
Figures = dict[str, dict[str, dict[str, float]]]


def one_round(seconds: float, kamailio_ok: bool) -> tuple[Figures, str]:
    """Both servers, both measurements: the figures by server and mode, and the edge's loop."""
    with tempfile.TemporaryDirectory(prefix="hybridge-bench-edge-") as tmp:
        base = Path(tmp)
        files = write_pki(base)
        figures: Figures = {}

        edge_dir = base / "edge"
        edge, cloud_port, traversal_port = start_edge(files, edge_dir)
        ready = mp.Event()
        uas = mp.Process(target=uas_main, args=(files, "dial", traversal_port, ready), daemon=True)
        uas.start()
        try:
            ready.wait(20)
            pids = children_of(edge.pid)
            figures["edge"] = {m: measure(files, cloud_port, pids, m, seconds) for m in LABELS}
        finally:
            uas.terminate()
            edge.terminate()
            edge.wait(10)
        log_lines = (edge_dir / "edge.log").read_text().splitlines()
        loop_line = [line for line in log_lines if "event loop" in line]
        edge_loop = loop_line[0].rsplit("event loop: ", 1)[1] if loop_line else "unknown"

        if kamailio_ok:
            uas_port = free_port()
            ready = mp.Event()
            uas = mp.Process(target=uas_main, args=(files, "listen", uas_port, ready), daemon=True)
            uas.start()
            ready.wait(20)
            kam_dir = base / "kamailio"
            kam_dir.mkdir()
            kamailio, kam_port = start_kamailio(files, kam_dir, uas_port)
            try:
                time.sleep(0.5)
                pids = children_of(kamailio.pid)
                figures["kamailio"] = {
                    m: measure(files, kam_port, pids, m, seconds) for m in LABELS
                }
            finally:
                uas.terminate()
                kamailio.terminate()
                kamailio.wait(10)
    return figures, edge_loop


def _flags(result: dict[str, float]) -> str:
    # What makes a figure a lower bound: a server that did not use its whole core waited
    # on something else (the generator, other load on a shared machine).
    flags = []
    if result["server_cpu"] < 0.9:
        flags.append("server not saturated")
    if result["load_cpu"] > 0.8:
        flags.append("load generator near its core's limit")
    return f"  [{'; '.join(flags)}]" if flags else ""


def report(figures: Figures) -> dict[str, float]:
    """Print one round's figures; return the per-CPU-second ratio edge/kamailio by mode."""
    ratios = {}
    for mode, label in LABELS.items():
        print(label)
        for name, result in figures.items():
            r = result[mode]
            print(
                f"  {name:<9} {r['rate']:>9.0f}/s  {_per_cpu(r):>9.0f} per server CPU-second"
                f"  (server CPU {r['server_cpu'] * 100:5.1f}%, load generator CPU"
                f" {r['load_cpu'] * 100:5.1f}% of a core; errors {r['errors']:.0f}){_flags(r)}"
            )
        if "kamailio" in figures and figures["kamailio"][mode]["rate"]:
            edge, kam = figures["edge"][mode], figures["kamailio"][mode]
            ratios[mode] = _per_cpu(edge) / max(_per_cpu(kam), 1e-9)
            print(
                f"  edge / kamailio = {edge['rate'] / kam['rate']:.2f}x wall-clock rate,"
                f" {ratios[mode]:.2f}x per server CPU-second"
            )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure this many times; print the ratios' range"
    )
    args = parser.parse_args()
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        sys.exit("bench/edge.py needs 2 cores (server on one, load on the other)")
    kamailio_ok = shutil.which("kamailio") is not None
    all_ratios: dict[str, list[float]] = {mode: [] for mode in LABELS}
    for number in range(1, args.rounds + 1):
        load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
        figures, edge_loop = one_round(args.seconds, kamailio_ok)
        if args.rounds > 1:
            print(f"-- round {number} of {args.rounds}")
        print(f"load average before the run: {load_before}; the edge ran on {edge_loop}")
        for mode, ratio in report(figures).items():
            all_ratios[mode].append(ratio)
    if args.rounds > 1 and kamailio_ok:
        print("edge / kamailio per server CPU-second over the rounds:")
        for mode, ratios in all_ratios.items():
            middle = sorted(ratios)[len(ratios) // 2]
            print(
                f"  {LABELS[mode][:3]} {min(ratios):.2f}x .. {max(ratios):.2f}x"
                f" (median {middle:.2f}x)"
            )
    if not kamailio_ok:
        print("kamailio with its TLS module is missing (scripts/install-system-deps): no ratio")


if __name__ == "__main__":
    main()
