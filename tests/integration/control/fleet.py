"""A fleet of simulated connectors on real TLS WebSockets, split across load processes.

Used by ``test_control_reconnect`` (500 connectors, cloud killed and restarted) and by
``bench/push_fanout.py`` (1,000 to 10,000). Each simulated connector has its own client
certificate issued by the cloud's real connector CA and its own registered connector row
(``control_stack.enroll_in_cloud``); it holds one ``/control`` WebSocket (server verified
against the demo root, client certificate presented), says hello, sends heartbeats at the
interval the welcome asks, verifies every push exactly as the real connector does before it
touches a trust store (``core.manifest.verify_manifest``: list-signing key, audience,
sequence above the installed one) and acks it. It reconnects for ever with the connector's
back-off (``core.control.Backoff``: capped exponential, full jitter).

One load process runs ``python fleet.py SPEC FIRST LAST`` for ``connectors[FIRST:LAST]``
and obeys one-line commands on stdin, answering one JSON line on stdout:

- ``connect N``: open the next N connections (at most ``gate`` handshakes in flight);
  answers ``{"up": count}`` once all opened so far are welcomed;

Each answer comes when its condition holds or after ``spec["timeout"]`` seconds (120) with
what there is, so a driver never waits for ever.
- ``killed T``: the cloud was killed at time T; answers ``{"back": [[welcome, tries,
  attempt]...]}`` once every connector has been welcomed again (seconds after T to the
  welcome, connection attempts, seconds after T to the start of the successful attempt);
- ``expect S``: answers ``{"acks": [times...], "refused": [reasons...]}`` once every
  connector acked sequence S (or refused a push);
- ``stop``: exit.

Why a separate process (several for 10,000): a single Python process cannot do 10,000 TLS
handshakes quickly on one core, and the cloud's figures must not include the load's CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import resource
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the load process ---------------------------------------------------------------------


@dataclass
class _Member:
    item: dict[str, str]
    installed: int = 1
    up: bool = False
    tries: int = 0
    #: When the current connection attempt started (the back-off's choice, before any
    #: queueing in the cloud) and when the first welcome after a kill arrived.
    attempt_at: float = 0.0
    back_at: float | None = None
    back_attempt_at: float = 0.0
    acked: dict[int, float] = field(default_factory=dict)


async def _load(spec: dict[str, Any], first: int, last: int) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    from hybridge.core.control import (
        MAX_CLOUD_FRAME,
        Ack,
        Backoff,
        Heartbeat,
        Hello,
        Push,
        Welcome,
        decode_cloud_message,
        encode_message,
    )
    from hybridge.core.manifest import ManifestError, verify_manifest

    list_key: Any = load_pem_public_key(spec["list_key"].encode())
    backoff = Backoff(spec.get("backoff_base", 1.0), spec.get("backoff_cap", 30.0))
    members = [_Member(item) for item in spec["connectors"][first:last]]
    gate = asyncio.Semaphore(spec.get("gate", 64))
    killed: list[float] = []
    refused: list[str] = []
    changed = asyncio.Event()

    async def session(member: _Member, context: ssl.SSLContext) -> None:
        # At start the handshakes are gated (the cloud's accept backlog); after a kill they
        # are not: the back-off alone must spread the fleet.
        async with gate if not killed else contextlib.nullcontext():
            websocket = await connect(
                spec["url"], ssl=context, compression=None, max_size=MAX_CLOUD_FRAME,
                open_timeout=60, ping_interval=None,
            )  # fmt: skip
        async with websocket:
            await websocket.send(encode_message(Hello("fleet", member.installed)))
            welcome = decode_cloud_message(await websocket.recv())
            interval = welcome.heartbeat_interval if isinstance(welcome, Welcome) else 30

            async def beat() -> None:
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await asyncio.sleep(interval)
                        await websocket.send(encode_message(Heartbeat("fleet", member.installed)))

            beats = asyncio.create_task(beat())
            try:
                member.up = True
                if killed and member.back_at is None:
                    member.back_at = time.time()
                    member.back_attempt_at = member.attempt_at
                changed.set()
                async for text in websocket:
                    message = decode_cloud_message(text)
                    if not isinstance(message, Push):
                        continue
                    try:
                        manifest = verify_manifest(
                            message.manifest,
                            list_key,
                            now=dt.datetime.now(dt.UTC),
                            installed_sequence=member.installed,
                            audience=member.item["id"],
                        )
                    except ManifestError as exc:
                        refused.append(exc.reason)
                        changed.set()
                        continue
                    member.installed = manifest.sequence
                    await websocket.send(encode_message(Ack(seq=manifest.sequence)))
                    member.acked[manifest.sequence] = time.time()
                    changed.set()
            finally:
                member.up = False
                beats.cancel()
                await asyncio.gather(beats, return_exceptions=True)

    async def run(member: _Member) -> None:
        context = ssl.create_default_context(cafile=spec["root_ca"])
        context.load_cert_chain(member.item["cert"], member.item["key"])
        attempt = 0
        while True:
            member.tries += 1
            member.attempt_at = time.time()
            try:
                await session(member, context)
                attempt = 0  # the session was up: the next outage starts from the base
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake):
                attempt += 1
            await asyncio.sleep(backoff.delay(attempt, random.random()))

    async def until(predicate: Any) -> None:
        # Bounded: after ``timeout`` the answer carries what there is; the driver judges.
        deadline = time.monotonic() + spec.get("timeout", 120)
        while not predicate() and time.monotonic() < deadline:
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), 0.5)

    def answer(value: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()

    tasks: list[asyncio.Task[None]] = []
    opened = 0
    while True:
        line = (await asyncio.to_thread(sys.stdin.readline)).split()
        if not line or line[0] == "stop":
            break
        if line[0] == "connect":
            batch = members[opened : opened + int(line[1])]
            opened += len(batch)
            tasks += [asyncio.create_task(run(m)) for m in batch]
            live = members[:opened]
            await until(lambda live=live: all(m.up for m in live))
            answer({"up": sum(m.up for m in members[:opened])})
        elif line[0] == "killed":
            killed.append(float(line[1]))
            for member in members:
                member.tries, member.back_at = 0, None
            live = members[:opened]
            await until(lambda live=live: all(m.back_at is not None for m in live))
            answer(
                {
                    "back": [
                        [m.back_at - killed[-1], m.tries, m.back_attempt_at - killed[-1]]
                        for m in members[:opened]
                        if m.back_at is not None
                    ]
                }
            )
        elif line[0] == "expect":
            seq = int(line[1])
            await until(
                lambda seq=seq, n=opened: sum(seq in m.acked for m in members) + len(refused) >= n
            )
            answer({"acks": [m.acked[seq] for m in members if seq in m.acked], "refused": refused})
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- the driver side ----------------------------------------------------------------------


class Fleet:
    """``processes`` load processes sharing ``spec["connectors"]``; commands go to all."""

    def __init__(self, spec_path: Path, count: int, processes: int = 1) -> None:
        processes = max(1, min(processes, count))
        bounds = [count * i // processes for i in range(processes + 1)]
        self.sizes = [bounds[i + 1] - bounds[i] for i in range(processes)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, __file__, str(spec_path), str(bounds[i]), str(bounds[i + 1])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(processes)
        ]

    def _ask(self, commands: list[str]) -> list[dict[str, Any]]:
        self._send(commands)
        return self._read()

    def _send(self, commands: list[str]) -> None:
        for proc, command in zip(self.procs, commands, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(command + "\n")
            proc.stdin.flush()

    def _read(self) -> list[dict[str, Any]]:
        answers = []
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"a load process exited (status {proc.poll()})")
            answers.append(json.loads(line))
        return answers

    def connect(self, count: int) -> int:
        """Open ``count`` more connections, spread over the processes; returns how many
        are up in total."""
        share = [count * size // sum(self.sizes) for size in self.sizes]
        share[0] += count - sum(share)
        return sum(a["up"] for a in self._ask([f"connect {n}" for n in share]))

    def killed(self, at: float) -> None:
        """Tell the fleet the cloud died at ``at`` (before it restarts: a connector that
        comes back early must count)."""
        self._send([f"killed {at}"] * len(self.procs))

    def back(self) -> list[tuple[float, int, float]]:
        """After ``killed``: wait until all are back. For each: seconds from the kill to
        the welcome, connection attempts, seconds from the kill to the start of the attempt
        that succeeded (where the back-off put it)."""
        return [(float(t), int(n), float(s)) for a in self._read() for t, n, s in a["back"]]

    def expect(self, sequence: int) -> tuple[list[float], list[str]]:
        """Wait until every connector acked ``sequence``: (ack times, refusal reasons)."""
        answers = self._ask([f"expect {sequence}"] * len(self.procs))
        return (
            [t for a in answers for t in a["acks"]],
            [r for a in answers for r in a["refused"]],
        )

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.write("stop\n")
                    proc.stdin.flush()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


if __name__ == "__main__":
    raise_fd_limit()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        run = asyncio.run
    run(_load(json.loads(Path(sys.argv[1]).read_text()), int(sys.argv[2]), int(sys.argv[3])))
