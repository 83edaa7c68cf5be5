"""Fixtures of the web tests (the app itself is built in ``web_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web_helpers import WebApp, build


@pytest.fixture
def web_app(tmp_path: Path) -> Iterator[WebApp]:
    made = build(tmp_path)
    with made.client:
        yield made
    made.database.dispose()
