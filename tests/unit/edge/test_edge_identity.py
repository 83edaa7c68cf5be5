"""``identity.judge`` with its ``VerdictCache``: real mutual TLS 1.3 handshakes in memory.

Each test runs a real handshake between two ``ssl.SSLObject``s over memory BIOs (the
edge's own server context, a client with a real certificate), then judges the server side's
peer. The cache may only ever repeat a verdict the full check would give: every accepting
case has twins where the same chain is refused (expired by then, other anchors, other zone
name, CN-only under a strict zone).
"""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest

from certs import load_tlspki
from hybridge.core.tlsverify import ChainLimits, CnRule, PeerRole, anchor_set_for
from hybridge.edge.identity import Admitted, Refusal, VerdictCache, judge
from hybridge.edge.zones import Zone, ZoneKind
from hybridge.tls import client_context, server_context

CLOUD = "callservice.example.test"
LIMITS = ChainLimits()


class Pki:
    def __init__(self, directory: Path) -> None:
        self.mod = load_tlspki()
        self.dir = directory
        self.now = dt.datetime.now(dt.UTC)
        # tlspki's default validity is around a fixed date; these handshakes happen now
        self.window = {
            "not_before": self.now - dt.timedelta(days=1),
            "not_after": self.now + dt.timedelta(days=30),
        }
        self.root = self.mod.make_ca("Unit Root", **self.window)
        server = self.mod.make_leaf(self.root, dns=["edge.example.test"], **self.window)
        self.server_ctx = server_context(
            [self.root.cert],
            cert_file=self.write("server", server),
            key_file=self.dir / "server.key",
        )

    def write(self, stem: str, issued: object) -> Path:
        (self.dir / f"{stem}.pem").write_bytes(issued.pem)  # type: ignore[attr-defined]
        (self.dir / f"{stem}.key").write_bytes(issued.key_pem())  # type: ignore[attr-defined]
        return self.dir / f"{stem}.pem"

    def client(self, stem: str, **kw: object) -> ssl.SSLContext:
        leaf = self.mod.make_leaf(self.root, **{**self.window, **kw})
        return client_context(
            [self.root.cert], cert_file=self.write(stem, leaf), key_file=self.dir / f"{stem}.key"
        )


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> ssl.SSLObject:
    """A completed TLS handshake in memory; returns the server's side of it."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="edge.example.test")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side, out, peer_in in (
            ("client", client, c_out, s_in),
            ("server", server, s_out, c_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            return server
    raise AssertionError("the in-memory handshake did not complete")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def zone(name: str = CLOUD, **kw: object) -> Zone:
    return Zone("cloud", ZoneKind.DNS, name, **kw)  # type: ignore[arg-type]


def test_a_reconnecting_peer_is_admitted_from_the_cache(pki: Pki) -> None:
    client = pki.client("cloud", dns=[CLOUD])
    anchors = anchor_set_for([pki.root.cert])
    cache = VerdictCache()
    first = judge(
        handshake(pki.server_ctx, client), (zone(),), anchors=anchors,
        role=PeerRole.CLIENT, limits=LIMITS, cache=cache,
    )  # fmt: skip
    assert isinstance(first, Admitted) and len(cache) == 1 and cache.hits == 0
    second = judge(
        handshake(pki.server_ctx, client), (zone(),), anchors=anchors,
        role=PeerRole.CLIENT, limits=LIMITS, cache=cache,
    )  # fmt: skip
    assert isinstance(second, Admitted)
    assert second.verdict == first.verdict and cache.hits == 1


def test_the_cached_chain_is_refused_once_it_has_expired(pki: Pki) -> None:
    client = pki.client("short", dns=[CLOUD], not_after=pki.now + dt.timedelta(hours=1))
    anchors = anchor_set_for([pki.root.cert])
    cache = VerdictCache()
    conn = handshake(pki.server_ctx, client)
    kw = {"anchors": anchors, "role": PeerRole.CLIENT, "limits": LIMITS, "cache": cache}
    assert isinstance(judge(conn, (zone(),), **kw), Admitted)  # type: ignore[arg-type]
    later = pki.now + dt.timedelta(hours=2)
    refused = judge(conn, (zone(),), at=later, **kw)  # type: ignore[arg-type]
    assert isinstance(refused, Refusal)
    assert refused.reason == "expired"
    assert cache.hits == 0 and len(cache) == 0


def test_other_anchors_empty_the_cache_and_the_chain_is_judged_afresh(pki: Pki) -> None:
    client = pki.client("cloud", dns=[CLOUD])
    cache = VerdictCache()
    conn = handshake(pki.server_ctx, client)
    kw = {"role": PeerRole.CLIENT, "limits": LIMITS, "cache": cache}
    trusted = anchor_set_for([pki.root.cert])
    assert isinstance(judge(conn, (zone(),), anchors=trusted, **kw), Admitted)  # type: ignore[arg-type]
    other = anchor_set_for([pki.mod.make_ca("Other Root", **pki.window).cert])
    refused = judge(conn, (zone(),), anchors=other, **kw)  # type: ignore[arg-type]
    assert isinstance(refused, Refusal)
    assert refused.reason == "untrusted_issuer"
    assert cache.hits == 0 and len(cache) == 0


def test_a_verdict_is_never_reused_for_another_zone_name(pki: Pki) -> None:
    client = pki.client("cloud", dns=[CLOUD])
    anchors = anchor_set_for([pki.root.cert])
    cache = VerdictCache()
    conn = handshake(pki.server_ctx, client)
    kw = {"anchors": anchors, "role": PeerRole.CLIENT, "limits": LIMITS, "cache": cache}
    assert isinstance(judge(conn, (zone(),), **kw), Admitted)  # type: ignore[arg-type]
    for _ in range(2):  # judged, then from the cache: the same refusal, the same line
        refused = judge(conn, (zone("callservice.other.test"),), **kw)  # type: ignore[arg-type]
        assert isinstance(refused, Refusal)
        assert refused.reason == "name_mismatch"
        assert refused.line == (
            "peer certificate identity unacceptable: presented SAN DNS:callservice.example.test;"
            " zone expects callservice.other.test (cn=when_no_san, wildcards=off)"
        )
    assert cache.hits == 1


def test_a_cn_only_certificate_stays_refused_under_a_strict_zone(pki: Pki) -> None:
    client = pki.client("cn-only", cn=CLOUD)
    anchors = anchor_set_for([pki.root.cert])
    cache = VerdictCache()
    conn = handshake(pki.server_ctx, client)
    kw = {"anchors": anchors, "role": PeerRole.CLIENT, "limits": LIMITS, "cache": cache}
    strict = zone(cn_rule=CnRule.NEVER)
    for _ in range(2):
        refused = judge(conn, (strict,), **kw)  # type: ignore[arg-type]
        assert isinstance(refused, Refusal) and refused.reason == "name_mismatch"
    # the twin: the same chain under a zone that allows the CN (no SAN) is admitted
    assert isinstance(judge(conn, (zone(),), **kw), Admitted)  # type: ignore[arg-type]


def test_the_cache_is_bounded(pki: Pki) -> None:
    anchors = anchor_set_for([pki.root.cert])
    cache = VerdictCache(max_entries=2)
    for index in range(3):
        conn = handshake(pki.server_ctx, pki.client(f"peer{index}", dns=[CLOUD]))
        outcome = judge(
            conn, (zone(),), anchors=anchors, role=PeerRole.CLIENT, limits=LIMITS, cache=cache
        )
        assert isinstance(outcome, Admitted)
    assert len(cache) == 2
    with pytest.raises(ValueError, match="max_entries must be positive, not 0"):
        VerdictCache(max_entries=0)
