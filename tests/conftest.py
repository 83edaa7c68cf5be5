"""Suite-wide rules.

In CI (``CI=true``) a skipped test is a failure: a test that needs a peer (openssl, Kamailio,
Chromium) must find it installed by ``make test``'s own setup, not silently skip.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import structlog

from hybridge.cli.common import route_logs_to_stderr

if TYPE_CHECKING:
    from pgserver import PostgresServer


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """Undo what a test's in-process ``serve`` or ``main`` did to the global log set-up.

    Commands configure logging for their process (levels, handlers); run in-process by a
    test, that would leak into every later test's captured output.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    route_logs_to_stderr()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL server on 127.0.0.1 for the whole session (tests/pgserver.py).

    A missing PostgreSQL is a failure, not a skip: ``scripts/install-system-deps`` installs it.
    """
    from pgserver import PostgresUnavailable, start_postgres

    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh, empty database on ``postgres_server``, dropped after."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        for report in skipped:
            print(f"\nCI: skipped test counts as a failure: {report.nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
