"""``python -m hybridge.testing.ews --port P --cert F --key F --config users.json``.

Prints one line ``EWS emulator listening on https://HOST:PORT/EWS/Exchange.asmx`` on stdout
once the socket is bound (``--port 0`` picks a free port; tests read it from that line),
then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from hybridge.testing.ews.config import EmulatorConfig, load_config
from hybridge.testing.ews.emulator import EwsEmulator
from hybridge.testing.ews.errors import EwsEmulatorError


def main(argv: list[str] | None = None) -> int:
    """Run the emulator; returns the exit status (2 for a bad configuration)."""
    parser = argparse.ArgumentParser(prog="python -m hybridge.testing.ews")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", type=Path, required=True, help="PEM certificate (chain)")
    parser.add_argument("--key", type=Path, required=True, help="PEM private key")
    parser.add_argument("--config", type=Path, help="users.json (accounts, impersonation, ...)")
    parser.add_argument("--auth", default="NTLM,Basic", help="comma list of NTLM, Basic")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        config = load_config(args.config) if args.config else EmulatorConfig()
        methods = tuple(m.strip() for m in args.auth.split(",") if m.strip())
        if not methods or not set(methods) <= {"NTLM", "Basic"}:
            raise EwsEmulatorError(f"--auth {args.auth!r}: use NTLM, Basic or NTLM,Basic")
        emulator = EwsEmulator(
            config,
            cert_file=args.cert,
            key_file=args.key,
            host=args.host,
            port=args.port,
            auth_methods=methods,
        )
    except (EwsEmulatorError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    emulator.start()
    print(f"EWS emulator listening on {emulator.ews_url}", flush=True)
    done.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
