"""``hybridge.tls.refusal``: real handshake failures worded as one reason and one line.

Every exception here is raised by OpenSSL in a real mutual-TLS handshake between two
``ssl.SSLObject``s over memory BIOs (the edge's and the cloud's context builders, real
certificates), or by a real socket; nothing is built by hand. Each refusal is checked from
both ends: the side whose check failed, and the peer that receives its alert. Under TLS 1.3
a client's handshake completes before the server judges the client certificate, so the
client meets the server's alert on its first read; under TLS 1.2 during its handshake.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from certs import load_tlspki
from hybridge.core.tlsverify import NamePolicy, PeerRole, RefusalReason, anchor_set_for
from hybridge.tls import check_peer, client_context, server_context
from hybridge.tls.refusal import (
    REASONS,
    Refusal,
    handshake_refusal,
    is_refused_by_peer,
    name_mismatch_refusal,
    verdict_refusal,
)

STORE = "the edge's trust store"


class Pki:
    """A root, a rogue root and certificates valid now, written where contexts read them."""

    def __init__(self, directory: Path) -> None:
        self.mod: Any = load_tlspki()
        self.dir = directory
        now = dt.datetime.now(dt.UTC)
        self.window = {
            "not_before": now - dt.timedelta(days=1),
            "not_after": now + dt.timedelta(days=30),
        }
        self.root = self.mod.make_ca("Refusal Root", **self.window)
        self.rogue = self.mod.make_ca("Rogue Root", **self.window)

    def leaf(self, stem: str, *, issuer: Any = None, **kw: Any) -> tuple[Path, Path]:
        issued = self.mod.make_leaf(issuer or self.root, **{**self.window, **kw})
        (self.dir / f"{stem}.pem").write_bytes(issued.pem)
        (self.dir / f"{stem}.key").write_bytes(issued.key_pem())
        return self.dir / f"{stem}.pem", self.dir / f"{stem}.key"

    def server(
        self, *, issuer: Any = None, version: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        cert, key = self.leaf("server", issuer=issuer, dns=["edge.example.test"])
        context = server_context([self.root.cert], cert_file=cert, key_file=key)
        if version is not None:
            context.maximum_version = version
        return context

    def client(self, stem: str | None = "client", **kw: Any) -> ssl.SSLContext:
        if stem is None:
            return client_context([self.root.cert])
        cert, key = self.leaf(stem, **kw)
        return client_context([self.root.cert], cert_file=cert, key_file=key)


@dataclass
class Outcome:
    client: ssl.SSLObject
    server: ssl.SSLObject
    client_error: ssl.SSLError | None
    server_error: ssl.SSLError | None


def handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext) -> Outcome:
    """Run a handshake in memory, then the client's first read; collect what each raised."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="edge.example.test")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    errors: dict[str, ssl.SSLError | None] = {"client": None, "server": None}
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            if done[name] or errors[name] is not None:
                continue
            try:
                side.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                errors[name] = exc
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    if done["client"] and errors["client"] is None:
        # What a client meets on its first read: the server's verdict on its certificate.
        try:
            client.read(1)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            errors["client"] = exc
    return Outcome(client, server, errors["client"], errors["server"])


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def test_a_trusted_pair_completes_with_nothing_to_refuse(pki: Pki) -> None:
    outcome = handshake(pki.client(dns=["edge2.example.test"]), pki.server())
    assert (outcome.client_error, outcome.server_error) == (None, None)
    assert outcome.client.version() == "TLSv1.3"


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"]
)
def test_a_client_from_another_ca_is_untrusted_and_hears_unknown_ca(
    pki: Pki, version: ssl.TLSVersion
) -> None:
    outcome = handshake(
        pki.client(issuer=pki.rogue, dns=["edge2.example.test"]), pki.server(version=version)
    )
    assert outcome.server_error is not None and outcome.client_error is not None
    assert handshake_refusal(outcome.server_error, trust_store=STORE) == Refusal(
        "untrusted_issuer",
        "peer certificate refused (untrusted_issuer): unable to get local issuer certificate "
        "(OpenSSL verify code 20); it must chain to the edge's trust store",
    )
    # The client's side: the server's alert about the client's certificate.
    assert is_refused_by_peer(outcome.client_error)
    assert not is_refused_by_peer(outcome.server_error)
    assert handshake_refusal(outcome.client_error, trust_store=STORE) == Refusal(
        "refused_by_peer",
        "the peer refused our certificate (alert unknown_ca): its trust store lacks the root "
        "of our certificate",
    )


def test_an_expired_client_is_expired_and_hears_certificate_expired(pki: Pki) -> None:
    now = dt.datetime.now(dt.UTC)
    outcome = handshake(
        pki.client(
            dns=["edge2.example.test"],
            not_before=now - dt.timedelta(days=30),
            not_after=now - dt.timedelta(days=1),
        ),
        pki.server(),
    )
    assert outcome.server_error is not None and outcome.client_error is not None
    refusal = handshake_refusal(outcome.server_error, trust_store="the cloud's trust store")
    assert refusal == Refusal(
        "expired",
        "peer certificate refused (expired): certificate has expired (OpenSSL verify code "
        "10); it must chain to the cloud's trust store",
    )
    assert handshake_refusal(outcome.client_error, trust_store=STORE) == Refusal(
        "refused_by_peer",
        "the peer refused our certificate (alert certificate_expired): it finds our "
        "certificate expired",
    )


def test_a_client_without_a_certificate_is_refused_and_hears_certificate_required(
    pki: Pki,
) -> None:
    outcome = handshake(pki.client(None), pki.server())
    assert outcome.server_error is not None and outcome.client_error is not None
    assert handshake_refusal(outcome.server_error, trust_store=STORE) == Refusal(
        "no_certificate",
        "peer presented no client certificate; mutual TLS is required on this listener",
    )
    assert handshake_refusal(outcome.client_error, trust_store=STORE) == Refusal(
        "refused_by_peer",
        "the peer refused our certificate (alert certificate_required): it requires a client "
        "certificate and got none from us",
    )


def test_a_server_from_another_ca_is_untrusted_by_the_client(pki: Pki) -> None:
    outcome = handshake(pki.client(dns=["edge2.example.test"]), pki.server(issuer=pki.rogue))
    assert outcome.client_error is not None and outcome.server_error is not None
    assert handshake_refusal(outcome.client_error, trust_store=STORE).reason == "untrusted_issuer"
    assert handshake_refusal(outcome.server_error, trust_store=STORE) == Refusal(
        "refused_by_peer",
        "the peer refused our certificate (alert unknown_ca): its trust store lacks the root "
        "of our certificate",
    )


def test_socket_failures_are_not_certificate_refusals() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: the connect is refused
        with pytest.raises(ConnectionRefusedError) as refused:
            socket.create_connection(("127.0.0.1", port), timeout=5)
    assert handshake_refusal(refused.value, trust_store=STORE) == Refusal(
        "connection_refused", "connection refused: nothing listens at that address"
    )
    assert not is_refused_by_peer(refused.value)
    assert handshake_refusal(TimeoutError(), trust_store=STORE) == Refusal(
        "handshake_timeout", "TLS handshake not completed in time; closed"
    )
    reset = handshake_refusal(ConnectionResetError("the peer closed"), trust_store=STORE)
    assert reset == Refusal("handshake_failed", "TLS handshake failed: ConnectionResetError")


def test_a_garbage_hello_is_a_handshake_failure_named_by_openssl(pki: Pki) -> None:
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = pki.server().wrap_bio(s_in, s_out, server_side=True)
    s_in.write(b"OPTIONS sip:edge.example.test SIP/2.0\r\n\r\n")
    with pytest.raises(ssl.SSLError) as failed:
        server.do_handshake()
    refusal = handshake_refusal(failed.value, trust_store=STORE)
    assert refusal.reason == "handshake_failed"
    assert refusal.line == f"TLS handshake failed: {failed.value.reason}"
    assert failed.value.reason  # OpenSSL names it (WRONG_VERSION_NUMBER, HTTP_REQUEST...)


def test_verdicts_of_our_check_read_like_the_handshake_ones(pki: Pki) -> None:
    outcome = handshake(pki.client(dns=["a.example", "b.example"]), pki.server())
    assert (outcome.client_error, outcome.server_error) == (None, None)
    anchors = anchor_set_for((pki.root.cert,))
    verdict = check_peer(
        outcome.server,
        names=NamePolicy("callservice.example.test"),
        anchors=anchors,
        role=PeerRole.CLIENT,
    )
    assert verdict.reason is RefusalReason.NAME_MISMATCH  # type: ignore[union-attr]
    mismatch = name_mismatch_refusal(
        verdict.presented_names,  # type: ignore[union-attr]
        expected_by="zone",
        expected="callservice.example.test",
    )
    # The log line, word for word.
    assert mismatch == Refusal(
        "name_mismatch",
        "peer certificate identity unacceptable: presented SAN DNS:a.example, DNS:b.example; "
        "zone expects callservice.example.test",
    )
    later = check_peer(
        outcome.server,
        names=NamePolicy("a.example"),
        anchors=anchors,
        role=PeerRole.CLIENT,
        at=dt.datetime.now(dt.UTC) + dt.timedelta(days=400),
    )
    assert verdict_refusal(later) == Refusal(  # type: ignore[arg-type]
        "expired",
        f"peer certificate refused (expired): {later.explanation}",  # type: ignore[union-attr]
    )


@pytest.mark.parametrize(
    ("reason", "line", "error"),
    [
        ("Name Mismatch", "x", "refusal reason 'Name Mismatch' is not a code like"),
        ("", "x", "refusal reason '' is not a code like"),
        ("x" * 65, "x", "is not a code like"),
        ("name_mismatch", "", "refusal line '' must be one non-empty line"),
        ("name_mismatch", "a\nforged: admitted", "must be one non-empty line"),
        ("name_mismatch", "a\rb", "must be one non-empty line"),
    ],
)
def test_a_refusal_is_one_code_and_one_line(reason: str, line: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("(", r"\(")):
        Refusal(reason, line)


def test_every_code_a_refusal_can_carry_is_declared_once() -> None:
    assert len(set(REASONS)) == len(REASONS)
    assert {r.value for r in RefusalReason} <= set(REASONS)
    assert {"refused_by_peer", "connection_refused", "no_certificate"} <= set(REASONS)
