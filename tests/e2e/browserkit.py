"""Headless Chromium for the end-to-end tests: one launch, one screenshot rule.

``walk_in_browser(walk, artifacts)`` opens a fresh context that ignores certificate errors
(Chromium reads custom roots only from an NSS database; the tests prove the role-to-role
TLS elsewhere), runs ``walk(page)`` and, if it raises, keeps a ``failure.png`` screenshot
under ``artifacts`` and prints the page's URL and the tail of its HTML before re-raising.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Where screenshots go: ``test-artifacts/<name>/`` at the repository root (gitignored).
ARTIFACTS_ROOT = Path(__file__).resolve().parents[2] / "test-artifacts"


def shot(page: Page, artifacts: Path, name: str) -> None:
    """Save a full-page screenshot of ``page`` as ``artifacts/<name>.png``."""
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def walk_in_browser(walk: Callable[[Page], None], artifacts: Path) -> None:
    """Run ``walk`` on a new page of headless Chromium; re-raises whatever ``walk`` raises."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True)
            context.set_default_timeout(30_000)
            page = context.new_page()
            try:
                walk(page)
            except Exception:
                shot(page, artifacts, "failure")
                print("failed at", page.url, page.content()[-3000:])
                raise
        finally:
            browser.close()
