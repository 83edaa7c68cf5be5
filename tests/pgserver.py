"""A throw-away PostgreSQL server for the tests: ``initdb`` in a temporary directory,
``pg_ctl start`` on 127.0.0.1 and a free port, ``pg_ctl stop`` at the end.

Written by hand because the libraries that do this (testing.postgresql, pytest-postgresql)
either are unmaintained or pull a plugin with its own fixtures and option names into the whole
suite; the server itself is Debian's real PostgreSQL, run exactly as an operator would.

PostgreSQL refuses to run as root ("root execution of the PostgreSQL server is not
permitted"): when the tests run as root, every server command runs as the ``postgres``
system user the Debian package creates (``runuser -u postgres --``) and the directory
belongs to it. Otherwise the server runs as the current user.

Authentication is scram-sha-256 with a random password (no ``trust``): the suite talks to
the server the way a deployment would, and another local user cannot use it. The server is
tuned for throw-away use (``fsync=off``): nothing it holds must survive a crash.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

#: Debian installs the server binaries per major version, off PATH.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "hybridge"
#: Bounds every wait: initdb, start, stop.
TIMEOUT = 60


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries (or the ``postgres`` user, under root) are missing."""


def find_bin_dir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``: ``$HYBRIDGE_PG_BINDIR``,
    then PATH, then Debian's newest ``/usr/lib/postgresql/<major>/bin``.

    Raises:
        PostgresUnavailable: none has all three.
    """
    wanted = ("initdb", "pg_ctl", "postgres")
    candidates: list[Path] = []
    if os.environ.get("HYBRIDGE_PG_BINDIR"):
        candidates.append(Path(os.environ["HYBRIDGE_PG_BINDIR"]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    debian = sorted(glob.glob(DEBIAN_BIN_GLOB), key=_major, reverse=True)
    candidates.extend(Path(p) for p in debian)
    for directory in candidates:
        if all((directory / name).is_file() for name in wanted):
            return directory
    raise PostgresUnavailable(
        f"PostgreSQL server binaries {wanted!r} not found in {[str(c) for c in candidates]!r}"
        " (nor on PATH): run scripts/install-system-deps (Debian package `postgresql`)"
    )


def _major(path: str) -> int:
    version = Path(path).parent.name
    return int(version) if version.isdigit() else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; ``url(database)`` is a SQLAlchemy URL (psycopg 3 driver)."""

    base: Path
    bin_dir: Path
    port: int
    password: str
    as_user: str | None

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as connection:
            connection.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        """Create a fresh, empty database and return its URL."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url`` (its remaining sessions are terminated)."""
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log(self) -> str:
        """The server's log so far (for an assertion message)."""
        path = self.base / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        try:
            _run(
                self.as_user,
                [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast",
                 "-w", "-t", str(TIMEOUT)],
            )  # fmt: skip
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _run(as_user: str | None, argv: list[str]) -> subprocess.CompletedProcess[str]:
    if as_user is not None:
        argv = ["runuser", "-u", as_user, "--", *argv]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT + 10, check=True, cwd="/"
    )


def start_postgres(attempts: int = 3) -> PostgresServer:
    """initdb a new cluster in a temporary directory and start it on 127.0.0.1.

    Raises:
        PostgresUnavailable: no server binaries, or no ``postgres`` user to run them as root.
        RuntimeError: initdb or the server failed (its output is in the message).
    """
    bin_dir = find_bin_dir()
    as_user: str | None = None
    if os.geteuid() == 0:
        as_user = "postgres"
        try:
            account = pwd.getpwnam(as_user)
        except KeyError as exc:
            raise PostgresUnavailable(
                "running as root needs the 'postgres' system user (Debian package `postgresql`)"
            ) from exc
    # Directly under the system temp dir: pytest's own tmp tree is 0700 root, which the
    # postgres user could not enter.
    base = Path(tempfile.mkdtemp(prefix="hybridge-pg-"))
    password = secrets.token_urlsafe(24)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if as_user is not None:
        for path in (base, pwfile):
            os.chown(path, account.pw_uid, account.pw_gid)
    try:
        _run(
            as_user,
            [str(bin_dir / "initdb"), "-D", str(base / "data"), "-U", SUPERUSER,
             "--pwfile", str(pwfile), "--auth", "scram-sha-256", "-E", "UTF8",
             "--locale", "C", "--no-sync"],
        )  # fmt: skip
        pwfile.unlink()
        last = ""
        for _ in range(attempts):
            port = _free_port()
            options = (
                f"-h 127.0.0.1 -p {port} -c unix_socket_directories='' -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                _run(
                    as_user,
                    [str(bin_dir / "pg_ctl"), "start", "-D", str(base / "data"), "-w",
                     "-t", str(TIMEOUT), "-l", str(base / "server.log"), "-o", options],
                )  # fmt: skip
            except subprocess.CalledProcessError as exc:
                # Most likely another process took the port between probe and bind.
                last = exc.stdout + exc.stderr
                continue
            return PostgresServer(base, bin_dir, port, password, as_user)
        log = (base / "server.log").read_text(errors="replace")
        raise RuntimeError(f"PostgreSQL did not start after {attempts} attempts: {last}\n{log}")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"{exc.cmd!r} failed: {exc.stdout}{exc.stderr}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(base, ignore_errors=True)
        raise
