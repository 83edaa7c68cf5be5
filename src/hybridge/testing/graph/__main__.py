"""``python -m hybridge.testing.graph --port P --cert F --key F --config tenant.json``.

Prints one line ``Graph emulator listening on https://HOST:PORT`` on stdout once the socket
is bound (``--port 0`` picks a free port; callers read it from that line), then serves
until SIGTERM/SIGINT. The identity platform is at ``/<tenant id>``, Graph at ``/v1.0``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from hybridge.testing.graph.config import GraphConfigError, tenant_from_json
from hybridge.testing.graph.emulator import GraphEmulator


def main(argv: list[str] | None = None) -> int:
    """Run the emulator; returns the exit status (2 for a bad configuration)."""
    parser = argparse.ArgumentParser(prog="python -m hybridge.testing.graph")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", type=Path, required=True, help="PEM certificate (chain)")
    parser.add_argument("--key", type=Path, required=True, help="PEM private key")
    parser.add_argument("--config", type=Path, required=True, help="tenant.json")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        config = tenant_from_json(json.loads(args.config.read_text()))
        emulator = GraphEmulator(
            config, cert_file=args.cert, key_file=args.key, host=args.host, port=args.port
        )
    except (GraphConfigError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    emulator.start()
    print(f"Graph emulator listening on {emulator.base_url}", flush=True)
    done.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
