"""Push fan-out: one cloud process, N connectors on real mutual-TLS WebSockets, one change.

- cloud: ``hybridge cloud serve`` (a real process, demo PKI, SQLite), as in production;
- connectors: N simulated connectors in a *separate* load process, each with its own
  client certificate issued by the cloud's connector CA and its own registered connector
  row, each holding one ``/control`` WebSocket over TLS (server verified against the demo
  root). A simulated connector does what the real one does with a push except touch a
  trust store: it verifies the manifest (``core.manifest.verify_manifest``: signature with
  the list-signing key, audience, sequence) and acks the sequence;
- one CA-list change through the cloud's portal (an operator uploads a CA certificate).

Printed: time from the upload request until 50 %, 99 % and 100 % of the connectors have
acknowledged the new sequence (each ack time taken by the load process when it sends the
ack); the cloud's resident memory per connection (RSS with N connections minus RSS before
any, divided by N); the cloud's CPU time for the fan-out (user + system, from /proc). Not a
pass/fail test. Issue 5's goal on a 2-core machine: 10,000 acknowledged within 5 s, under
60 KiB of cloud memory per connection.

With ``--restart`` it then kills the cloud (SIGKILL), restarts it on the same port and
prints how the connectors come back: each reconnects with the connector's back-off (capped
exponential, full jitter, never giving up), so the reconnections spread over seconds.

Run: ``.venv/bin/python bench/push_fanout.py [--connectors 1000] [--restart]`` (10,000 works given
``ulimit -n`` above 10,100; the script raises the soft limit to the hard one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import re
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

#: ``control_stack``: how the control tests register a connector in the cloud (real CA).
TEST_HELPERS = Path(__file__).resolve().parents[1] / "tests" / "integration" / "control"


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the load process ---------------------------------------------------------------------


async def _load(spec: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    from hybridge.core.control import (
        MAX_CLOUD_FRAME,
        Ack,
        Backoff,
        Heartbeat,
        Push,
        Welcome,
        decode_cloud_message,
    )
    from hybridge.core.control import encode_message as encode
    from hybridge.core.manifest import ManifestError, verify_manifest

    list_key: Any = load_pem_public_key(spec["list_key"].encode())
    acks: dict[str, float] = {}
    refused: list[str] = []
    ready = asyncio.Event()
    half = asyncio.Event()
    connected = 0
    stop = asyncio.Event()

    backoff = Backoff(base=1.0, cap=30.0)
    installed: dict[str, int] = {}
    reconnects: dict[str, tuple[float, int]] = {}
    tries: dict[str, int] = {}
    killed_at: list[float] = []
    all_back = asyncio.Event()

    async def session(
        item: dict[str, str], context: ssl.SSLContext, gate: asyncio.Semaphore
    ) -> None:
        nonlocal connected
        # At start the handshakes are gated (the cloud's accept backlog); after the kill
        # they are not: the back-off alone must spread the fleet.
        async with gate if not killed_at else contextlib.nullcontext():
            websocket = await connect(
                spec["url"], ssl=context, compression=None, max_size=MAX_CLOUD_FRAME,
                open_timeout=60, ping_interval=None,
            )  # fmt: skip
        async with websocket:
            hello = {"type": "hello", "version": "bench", "installed_seq": installed[item["id"]]}
            await websocket.send(json.dumps(hello))
            welcome = decode_cloud_message(await websocket.recv())
            interval = welcome.heartbeat_interval if isinstance(welcome, Welcome) else 30

            async def beat() -> None:
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await asyncio.sleep(interval)
                        await websocket.send(encode(Heartbeat("bench", installed[item["id"]])))

            beats = asyncio.create_task(beat())
            try:
                connected += 1
                if connected == len(spec["connectors"]) // 2:
                    half.set()
                if connected == len(spec["connectors"]):
                    ready.set()
                if killed_at and item["id"] not in reconnects:
                    reconnects[item["id"]] = (time.time() - killed_at[0], tries.get(item["id"], 0))
                    if len(reconnects) == len(spec["connectors"]):
                        all_back.set()
                async for text in websocket:
                    message = decode_cloud_message(text)
                    if not isinstance(message, Push):
                        continue
                    try:
                        manifest = verify_manifest(
                            message.manifest,
                            list_key,
                            now=dt.datetime.now(dt.UTC),
                            installed_sequence=installed[item["id"]],
                            audience=item["id"],
                        )
                    except ManifestError as exc:
                        refused.append(exc.reason)
                        continue
                    installed[item["id"]] = manifest.sequence
                    await websocket.send(encode(Ack(seq=manifest.sequence)))
                    acks[item["id"]] = time.time()
                    if len(acks) + len(refused) == len(spec["connectors"]):
                        stop.set()
            finally:
                beats.cancel()

    async def one(item: dict[str, str], gate: asyncio.Semaphore) -> None:
        # What the real connector does (connector.control): reconnect for ever, with
        # capped exponential back-off and full jitter, so a fleet cut off at once spreads.
        context = ssl.create_default_context(cafile=spec["root_ca"])
        context.load_cert_chain(item["cert"], item["key"])
        installed[item["id"]] = 1
        attempt = 0
        while True:
            try:
                if killed_at:
                    tries[item["id"]] = tries.get(item["id"], 0) + 1
                await session(item, context, gate)
                attempt = 0  # the session was up: the next outage starts from the base
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake):
                attempt += 1
            await asyncio.sleep(backoff.delay(attempt, random.random()))

    gate = asyncio.Semaphore(64)  # handshakes in flight; the cloud's backlog is 2048
    middle = len(spec["connectors"]) // 2
    tasks = [asyncio.create_task(one(item, gate)) for item in spec["connectors"][:middle]]
    await half.wait()
    # The driver reads the cloud's RSS at N/2, then lets the second half connect: the
    # difference is the marginal cost of a connection, without the first one's warm-up.
    print("HALF", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    tasks += [asyncio.create_task(one(item, gate)) for item in spec["connectors"][middle:]]
    await ready.wait()
    print("READY", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), spec["timeout"])
    print("RESULT " + json.dumps({"acks": list(acks.values()), "refused": refused}), flush=True)
    if spec["restart"]:
        # The driver kills the cloud, tells us when, and restarts it on the same port.
        killed_at.append(float(await asyncio.to_thread(sys.stdin.readline)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_back.wait(), spec["timeout"])
        print("RECONNECTS " + json.dumps(list(reconnects.values())), flush=True)
    for task in tasks:
        task.cancel()


# -- the driver ---------------------------------------------------------------------------


def _proc(pid: int) -> tuple[int, float]:
    """(RSS bytes, user+system CPU seconds) of ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kib * 1024, (int(fields[11]) + int(fields[12])) / ticks


def _enroll(work: Path, pki: Any, url: str, n: int) -> list[dict[str, str]]:
    sys.path.insert(
        0, str(Path(__file__).resolve().parents[1] / "tests" / "integration" / "control")
    )
    from control_stack import cloud_keys, enroll_in_cloud

    from hybridge.storage.db import open_database, sqlite_url

    keys = cloud_keys(pki, work / "cloud", url)
    database = open_database(sqlite_url(work / "cloud" / "cloud.db"), "cloud")
    items = []
    certs = work / "load"
    certs.mkdir()
    for index in range(n):
        enrolled = enroll_in_cloud(database, keys, hostname=f"c{index}.bench.test")
        cert, key = certs / f"{index}.pem", certs / f"{index}.key"
        cert.write_bytes(enrolled.certificate_pem)
        key.write_bytes(enrolled.key_pem)
        items.append({"id": enrolled.connector_id, "cert": str(cert), "key": str(key)})
    database.dispose()
    return items


def _operator(url: str, root_ca: Path) -> httpx.Client:
    """A portal session of the bench's operator (logged in before the clock starts)."""
    sys.path.insert(
        0, str(Path(__file__).resolve().parents[1] / "tests" / "integration" / "control")
    )

    client = httpx.Client(
        base_url=url, verify=ssl.create_default_context(cafile=str(root_ca)), timeout=60
    )
    csrf = re.compile(r'name="csrf_token" value="([^"]+)"')
    page = client.get("/login")
    client.post(
        "/login",
        data={
            "login": "ops@bench.test",
            "password": "bench operator password",
            "csrf_token": csrf.findall(page.text)[-1],
        },
    )
    return client


def _change(client: httpx.Client) -> None:
    """Upload one new CA certificate: the change every connector must receive."""
    sys.path.insert(0, str(TEST_HELPERS))
    from control_stack import make_ca
    from cryptography.hazmat.primitives.serialization import Encoding

    csrf = re.compile(r'name="csrf_token" value="([^"]+)"')
    page = client.get("/ca-list")
    pem = make_ca("Bench Fan-out Root").public_bytes(Encoding.PEM).decode()
    response = client.post(
        "/ca-list/upload", data={"pem": pem, "csrf_token": csrf.findall(page.text)[-1]}
    )
    if "Published version" not in response.text:
        raise SystemExit(f"the upload was not published: {response.status_code}")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connectors", type=int, default=1000)
    parser.add_argument(
        "--restart",
        action="store_true",
        help="then kill the cloud, restart it, and report how the connectors come back",
    )
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    _raise_fd_limit()
    if args.load:
        asyncio.run(_load(json.loads(args.load.read_text())))
        return

    from hybridge.cloud.orgs import create_org_admin
    from hybridge.connector.demo_run import start_cloud
    from hybridge.demo.pki import init_demo_pki
    from hybridge.storage.db import open_database, sqlite_url
    from hybridge.web.clock import system_clock

    n = args.connectors
    with tempfile.TemporaryDirectory(prefix="hybridge-fanout-") as tmp:
        work = Path(tmp)
        pki, _ = init_demo_pki(work / "pki")
        (work / "cloud").mkdir()
        database = open_database(sqlite_url(work / "cloud" / "cloud.db"), "cloud")
        with database.transaction() as db:
            create_org_admin(
                db, "Bench", "ops@bench.test", "bench operator password", system_clock(),
                operator=True,
            )  # fmt: skip
        database.dispose()
        cloud = start_cloud(work, pki, env={**os.environ, "HYBRIDGE_CONTROL_POLL": "5"})
        try:
            started = time.monotonic()
            items = _enroll(work, pki, cloud.url, n)
            print(f"enrolled {n} connectors in {time.monotonic() - started:.1f} s")
            spec = {
                "url": cloud.url.replace("https://", "wss://") + "/control",
                "root_ca": str(pki.root_ca),
                "list_key": pki.list_signing_public.read_text(),
                "connectors": items,
                "timeout": 120,
                "restart": args.restart,
            }
            spec_path = work / "load.json"
            spec_path.write_text(json.dumps(spec))
            rss_idle, _ = _proc(cloud.process.pid)
            operator = _operator(cloud.url, pki.root_ca)
            started = time.monotonic()
            load = subprocess.Popen(
                [sys.executable, __file__, "--load", str(spec_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert load.stdout is not None and load.stdin is not None
            if not load.stdout.readline().startswith("HALF"):
                raise SystemExit("load process failed before half the connections")
            time.sleep(1.0)  # let the cloud's batch writer settle
            rss_half, _ = _proc(cloud.process.pid)
            load.stdin.write("go\n")
            load.stdin.flush()
            line = load.stdout.readline()
            if not line.startswith("READY"):
                raise SystemExit(f"load process failed: {line!r}")
            print(f"{n} WebSockets up in {time.monotonic() - started:.1f} s")
            time.sleep(1.0)  # let the cloud's batch writer settle
            rss_connected, cpu_before = _proc(cloud.process.pid)
            changed_at = time.time()
            _change(operator)
            result_line = load.stdout.readline()
            _, cpu_after = _proc(cloud.process.pid)
            result = json.loads(result_line.removeprefix("RESULT "))
            times = [t - changed_at for t in result["acks"]]
            print(f"connectors: {n}, acknowledged: {len(times)}, refused: {len(result['refused'])}")
            if times:
                print(
                    f"ack time  p50 {_percentile(times, 0.5) * 1000:8.0f} ms   "
                    f"p99 {_percentile(times, 0.99) * 1000:8.0f} ms   "
                    f"100% {max(times) * 1000:8.0f} ms   (goal: 100% within 5000 ms)"
                )
            marginal = (rss_connected - rss_half) / (n - n // 2) / 1024
            average = (rss_connected - rss_idle) / n / 1024
            print(
                f"cloud RSS idle {rss_idle / 2**20:.1f} MiB, {n // 2} connections "
                f"{rss_half / 2**20:.1f} MiB, {n} connections {rss_connected / 2**20:.1f} MiB"
            )
            print(
                f"cloud memory per connection: {marginal:.1f} KiB marginal (second half), "
                f"{average:.1f} KiB average incl. warm-up (goal: < 60 KiB)"
            )
            print(f"cloud CPU time for the fan-out: {cpu_after - cpu_before:.2f} s")
            if args.restart:
                cloud = _restart(cloud, pki, work, load)
            load.wait(60)
        finally:
            cloud.stop()


def _restart(cloud: Any, pki: Any, work: Path, load: subprocess.Popen[str]) -> Any:
    """Kill the cloud (SIGKILL), restart it on the same port, report how the fleet returns."""
    from hybridge.connector.demo_run import start_cloud

    assert load.stdin is not None and load.stdout is not None
    killed_at = time.time()
    cloud.process.kill()
    cloud.process.wait(10)
    load.stdin.write(f"{killed_at}\n")
    load.stdin.flush()
    port = int(cloud.url.rsplit(":", 1)[1])
    cloud = start_cloud(work, pki, port=port, env={**os.environ, "HYBRIDGE_CONTROL_POLL": "5"})
    back = time.time() - killed_at
    line = load.stdout.readline()
    reconnects = json.loads(line.removeprefix("RECONNECTS "))
    times = sorted(t for t, _ in reconnects)
    tries = [n for _, n in reconnects]
    print(
        f"cloud killed and restarted: listening again after {back:.1f} s; "
        f"{len(times)} connectors reconnected (none gives up: they retry for ever)"
    )
    if times:
        per_second: dict[int, int] = {}
        for t in times:
            per_second[int(t)] = per_second.get(int(t), 0) + 1
        print(
            f"reconnect time after the kill  p50 {_percentile(times, 0.5):.1f} s   "
            f"p99 {_percentile(times, 0.99):.1f} s   100% {times[-1]:.1f} s;  "
            f"attempts per connector: mean {sum(tries) / len(tries):.1f}, max {max(tries)}"
        )
        print(
            "reconnections per second after the kill (back-off spread): "
            + ", ".join(f"{s}s:{c}" for s, c in sorted(per_second.items()))
        )
    return cloud


if __name__ == "__main__":
    main()
