"""Suite-wide rules.

In CI (``CI=true``) a skipped test is a failure: a test that needs a peer (openssl, Kamailio,
Chromium) must find it installed by ``make test``'s own setup, not silently skip.
"""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        for report in skipped:
            print(f"\nCI: skipped test counts as a failure: {report.nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
