"""An in-process EWS emulator over real TLS on 127.0.0.1, with a trustme CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from ews_soap_requests import SVC_PASSWORD

from hybridge.testing.ews import (
    DirectoryAccount,
    EmulatorConfig,
    EwsEmulator,
    ImpersonationAssignment,
    ThrottlePolicy,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    d = tmp_path_factory.mktemp("ews-pki")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    return ca, d / "cert.pem", d / "key.pem"


def make_config(**overrides: object) -> EmulatorConfig:
    base: dict[str, object] = dict(
        accounts=(
            DirectoryAccount("svc@contoso.test", "svc-hybridge", SVC_PASSWORD, has_mailbox=False),
            DirectoryAccount("alice@contoso.test", "alice", "alice-pw"),
            DirectoryAccount("bob@contoso.test", "bob", "bob-pw"),
            DirectoryAccount("old@contoso.test", "old", "old-pw", password_expired=True),
        ),
        impersonation=(
            ImpersonationAssignment("Hybridge", "svc-hybridge", frozenset({"alice@contoso.test"})),
        ),
        throttling=(("bob@contoso.test", ThrottlePolicy(after_requests=2, back_off_ms=1500)),),
        streaming_minute_seconds=1.0,
        streaming_heartbeat_seconds=0.3,
    )
    base.update(overrides)
    return EmulatorConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def emulator(pki: tuple[trustme.CA, Path, Path]) -> Iterator[EwsEmulator]:
    _, cert, key = pki
    with EwsEmulator(make_config(), cert_file=cert, key_file=key) as ews:
        yield ews


@pytest.fixture
def client_context(pki: tuple[trustme.CA, Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=None, capath=None, cadata=None)
    ctx.load_verify_locations(cadata=pki[0].cert_pem.bytes().decode())
    return ctx


@pytest.fixture
def http(client_context: ssl.SSLContext) -> Iterator[httpx.Client]:
    with httpx.Client(verify=client_context, timeout=10) as client:
        yield client
