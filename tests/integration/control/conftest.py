"""Fixtures of the control-channel tests: the demo PKI, shared by the package."""

from __future__ import annotations

import pytest

from hybridge.demo.pki import DemoPki, init_demo_pki


@pytest.fixture(scope="package")
def demo_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    pki, _ = init_demo_pki(tmp_path_factory.mktemp("control-pki") / "demo")
    return pki
