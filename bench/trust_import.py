"""Benchmark: add certifi's Mozilla bundle to an empty trust store and list it, against
``openssl storeutl -noout -text -certs`` reading (and printing) the same file, in one run.

Both sides parse every certificate and produce a description of each; ours also checks
each one (CA flag, self-signature, status), writes the SQLite rows, the audit record and the
exported bundle. Printed: the median of several repetitions for each side and the ratio.

    .venv/bin/python bench/trust_import.py [--repeat N]

``hybridge (in-process)`` times the library (open store + add + list); ``hybridge (CLI)``
times the two real commands ``hybridge trust add`` and ``hybridge trust list --json``,
interpreter start-up included, which is what an admin waits for.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import certifi

from hybridge.core.pki import MAX_INPUT_BYTES
from hybridge.truststore import open_trust_store

BUNDLE = Path(certifi.where())


def timed(action: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    count = action()
    return time.perf_counter() - started, count


def hybridge_in_process() -> int:
    work = Path(tempfile.mkdtemp(prefix="hybridge-bench-"))
    try:
        with open_trust_store(work / "data") as store:
            store.add_manual_files([BUNDLE], actor="bench", max_bytes=MAX_INPUT_BYTES)
            return len(store.list_anchors())
    finally:
        shutil.rmtree(work)


def hybridge_cli() -> int:
    work = Path(tempfile.mkdtemp(prefix="hybridge-bench-"))
    try:
        base = [sys.executable, "-m", "hybridge", "trust"]
        data = ["--data-dir", str(work / "data")]
        subprocess.run([*base, "add", str(BUNDLE), *data], check=True, capture_output=True)
        listed = subprocess.run(
            [*base, "list", "--json", *data], check=True, capture_output=True, text=True
        )
        return listed.stdout.count('"fingerprint_sha256"')
    finally:
        shutil.rmtree(work)


def openssl_storeutl() -> int:
    result = subprocess.run(
        ["openssl", "storeutl", "-noout", "-text", "-certs", str(BUNDLE)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(result.stdout.rsplit("Total found: ", 1)[1].split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per side (median)")
    args = parser.parse_args()

    sides = {
        "openssl storeutl -text": openssl_storeutl,
        "hybridge (in-process)": hybridge_in_process,
        "hybridge (CLI)": hybridge_cli,
    }
    medians: dict[str, float] = {}
    counts: dict[str, set[int]] = {}
    for label, action in sides.items():
        action()  # warm-up: page cache, imports
        runs = [timed(action) for _ in range(args.repeat)]
        medians[label] = statistics.median(seconds for seconds, _ in runs)
        counts[label] = {count for _, count in runs}

    expected = counts["openssl storeutl -text"]
    if any(found != expected for found in counts.values()):
        print(f"certificate counts differ: {counts}", file=sys.stderr)
        return 1
    peer = medians["openssl storeutl -text"]
    print(f"certifi bundle: {BUNDLE.name}, {expected.pop()} certificates, median of {args.repeat}")
    for label, seconds in medians.items():
        print(f"  {label:<24} {seconds * 1000:9.1f} ms   ratio vs openssl {seconds / peer:6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
