"""verify_peer with real certificates: every rule, its twin, and the hostile set."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tlspki import (
    CLIENT_AUTH,
    NOW,
    SERVER_AUTH,
    Issued,
    der_san,
    make_ca,
    make_chain,
    make_leaf,
    rsa_key,
)

from hybridge.core.tlsverify import (
    Accepted,
    AnchorSet,
    ChainLimits,
    ChainParseError,
    CnRule,
    IdentitySource,
    InvalidVerifyInput,
    NamePolicy,
    PeerRole,
    RefusalReason,
    Refused,
    Use,
    Verdict,
    anchor_set_for,
    fingerprint,
    load_chain,
    verify_peer,
)

NAME = "callservice.example.com"


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_ca("Hybridge Test Root")


@pytest.fixture(scope="module")
def inter(root: Issued) -> Issued:
    return make_ca("Hybridge Test Intermediate", issuer=root)


def check(
    leaf: Issued,
    intermediates: list[Issued],
    root: Issued | AnchorSet,
    *,
    name: str = NAME,
    role: PeerRole = PeerRole.SERVER,
    at: dt.datetime = NOW,
    use: Use = Use.PLATFORM,
    cn: CnRule = CnRule.WHEN_NO_SAN,
    wildcards: bool = False,
    limits: ChainLimits | None = None,
) -> Verdict:
    anchors = root if isinstance(root, AnchorSet) else AnchorSet((root.cert,))
    return verify_peer(
        leaf.cert,
        [i.cert for i in intermediates],
        anchors=anchors,
        names=NamePolicy(name, cn=cn, wildcards=wildcards),
        role=role,
        at=at,
        use=use,
        limits=limits or ChainLimits(),
    )


def refused(verdict: Verdict, reason: RefusalReason) -> Refused:
    assert isinstance(verdict, Refused), verdict
    assert verdict.reason is reason, verdict
    assert "\n" not in verdict.explanation
    return verdict


# -- the accepting case and its twins ------------------------------------------------------


def test_valid_chain_with_matching_dns_san_is_accepted(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, dns=[NAME])
    verdict = check(leaf, [inter], root)
    assert isinstance(verdict, Accepted)
    assert verdict.identity == NAME
    assert verdict.source is IdentitySource.SAN_DNS
    assert not verdict.cn_decided
    assert verdict.chain_sha256 == (
        fingerprint(leaf.cert),
        fingerprint(inter.cert),
        fingerprint(root.cert),
    )
    assert verdict.anchor_sha256 == fingerprint(root.cert)
    assert verdict.to_dict()["source"] == "san_dns"


def test_wrong_ca_with_the_right_name_is_untrusted(root: Issued, inter: Issued) -> None:
    impostor_root = make_ca("Hybridge Test Root")  # same name, other key
    impostor = make_ca("Hybridge Test Intermediate", issuer=impostor_root)
    leaf = make_leaf(impostor, dns=[NAME])
    verdict = refused(check(leaf, [impostor], root), RefusalReason.UNTRUSTED_ISSUER)
    assert "Hybridge Test Intermediate" in verdict.explanation
    assert verdict.presented_names == (f"dns:{NAME}",)


def test_missing_intermediate_is_untrusted(root: Issued, inter: Issued) -> None:
    refused(check(make_leaf(inter, dns=[NAME]), [], root), RefusalReason.UNTRUSTED_ISSUER)


def test_wrong_name_is_refused_listing_what_the_certificate_carries(
    root: Issued, inter: Issued
) -> None:
    leaf = make_leaf(
        inter, dns=["other.example.com"], uris=["sip:sip.example.com"], cn="other.example.com"
    )
    verdict = refused(check(leaf, [inter], root), RefusalReason.NAME_MISMATCH)
    assert verdict.explanation == (
        f"the certificate does not name {NAME!r} (cn=when_no_san, wildcards=off); it "
        "carries: dns:other.example.com, uri:sip:sip.example.com, cn:other.example.com"
    )


def test_expired_leaf(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, dns=[NAME], not_after=NOW - dt.timedelta(seconds=1))
    verdict = refused(check(leaf, [inter], root), RefusalReason.EXPIRED)
    assert verdict.explanation.startswith("the peer's certificate")
    assert "expired at" in verdict.explanation


def test_not_yet_valid_leaf(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, dns=[NAME], not_before=NOW + dt.timedelta(hours=1))
    verdict = refused(check(leaf, [inter], root), RefusalReason.NOT_YET_VALID)
    assert "not valid before" in verdict.explanation


def test_expired_intermediate(root: Issued) -> None:
    old = make_ca("Old Intermediate", issuer=root, not_after=NOW - dt.timedelta(days=1))
    leaf = make_leaf(old, dns=[NAME])
    verdict = refused(check(leaf, [old], root), RefusalReason.EXPIRED)
    assert "intermediate 'CN=Old Intermediate' expired" in verdict.explanation


def test_validation_time_is_a_parameter(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, dns=[NAME])
    assert isinstance(check(leaf, [inter], root, at=NOW), Accepted)
    refused(check(leaf, [inter], root, at=NOW + dt.timedelta(days=61)), RefusalReason.EXPIRED)


def test_naive_time_is_bad_input(root: Issued, inter: Issued) -> None:
    with pytest.raises(InvalidVerifyInput, match="no timezone"):
        check(make_leaf(inter, dns=[NAME]), [inter], root, at=NOW.replace(tzinfo=None))


# -- CN rule on real certificates --------------------------------------------------------------


def test_cn_only_certificate_is_accepted_and_says_the_cn_decided(
    root: Issued, inter: Issued
) -> None:
    leaf = make_leaf(inter, cn=NAME)
    verdict = check(leaf, [inter], root)
    assert isinstance(verdict, Accepted)
    assert verdict.source is IdentitySource.CN
    assert verdict.cn_decided
    assert verdict.to_dict()["cn_decided"] is True


def test_cn_only_certificate_is_refused_when_cn_is_off(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, cn=NAME)
    refused(check(leaf, [inter], root, cn=CnRule.NEVER), RefusalReason.NAME_MISMATCH)


def test_cn_is_not_used_when_a_dns_san_exists(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, cn=NAME, dns=["other.example.com"])
    refused(check(leaf, [inter], root), RefusalReason.NAME_MISMATCH)


@pytest.mark.parametrize("oid", [NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.ORGANIZATION_NAME])
def test_name_in_ou_or_o_is_never_an_identity(
    root: Issued, inter: Issued, oid: x509.ObjectIdentifier
) -> None:
    subject = x509.Name([x509.NameAttribute(oid, NAME)])
    leaf = make_leaf(inter, subject=subject)
    verdict = refused(check(leaf, [inter], root), RefusalReason.NAME_MISMATCH)
    assert "no DNS, URI, IP or CN identity at all" in verdict.explanation


# -- SAN forms ---------------------------------------------------------------------------------


def test_sip_uri_san_is_accepted(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, uris=[f"sip:{NAME}"])
    verdict = check(leaf, [inter], root)
    assert isinstance(verdict, Accepted)
    assert verdict.source is IdentitySource.SAN_URI


def test_sip_uri_with_a_user_part_is_refused(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, uris=[f"sip:alice@{NAME}"])
    refused(check(leaf, [inter], root), RefusalReason.NAME_MISMATCH)


def test_ip_san_matches_an_ip_name(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, ips=["127.0.0.1"], dns=["localhost"])
    verdict = check(leaf, [inter], root, name="127.0.0.1")
    assert isinstance(verdict, Accepted)
    assert verdict.source is IdentitySource.SAN_IP
    refused(check(leaf, [inter], root, name="127.0.0.2"), RefusalReason.NAME_MISMATCH)


def test_san_with_embedded_nul_never_matches(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, raw_san=der_san(NAME.encode() + b"\x00.evil.com"))
    verdict = refused(check(leaf, [inter], root), RefusalReason.NAME_MISMATCH)
    assert "dns:callservice.example.com\\x00.evil.com" in verdict.explanation
    refused(check(leaf, [inter], root, name="evil.com"), RefusalReason.NAME_MISMATCH)


@pytest.mark.parametrize("variant", [NAME.upper(), NAME + ".", "CallService.Example.Com."])
def test_upper_case_and_trailing_dot_variants_are_accepted(
    root: Issued, inter: Issued, variant: str
) -> None:
    assert isinstance(check(make_leaf(inter, dns=[variant]), [inter], root), Accepted)


@pytest.mark.parametrize(
    "presented", ["*.example.com", "c*.example.com", "callservice.*.com", "*.com"]
)
def test_wildcards_refused_by_default(root: Issued, inter: Issued, presented: str) -> None:
    refused(check(make_leaf(inter, dns=[presented]), [inter], root), RefusalReason.NAME_MISMATCH)


def test_wildcard_accepted_when_the_zone_opts_in(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, dns=["*.example.com"])
    assert isinstance(check(leaf, [inter], root, wildcards=True), Accepted)
    for bad in ("f*.example.com", "callservice.*.com"):
        verdict = check(make_leaf(inter, dns=[bad]), [inter], root, wildcards=True)
        refused(verdict, RefusalReason.NAME_MISMATCH)


def test_idn_homograph_is_refused(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, dns=["xn--pple-43d.com"])  # "аpple.com", Cyrillic а
    refused(check(leaf, [inter], root, name="apple.com"), RefusalReason.NAME_MISMATCH)
    assert isinstance(check(leaf, [inter], root, name="аpple.com"), Accepted)


def test_critical_san_beside_a_subject_is_refused(root: Issued, inter: Issued) -> None:
    # What trustme emits: a WebPKI verifier refuses it (CA/B Forum BR §7.1.2.7.12).
    leaf = make_leaf(inter)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x")]))
        .issuer_name(inter.cert.subject)
        .public_key(leaf.key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(inter.key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    from cryptography.hazmat.primitives import hashes

    bad = Issued(builder.sign(inter.key, hashes.SHA256()), leaf.key)
    verdict = refused(check(bad, [inter], root), RefusalReason.INVALID_CHAIN)
    assert "critical" in verdict.explanation


# -- extended key usage per role -------------------------------------------------------------


def test_server_auth_only_certificate_is_accepted_as_a_client(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, dns=[NAME], eku=[SERVER_AUTH])
    assert isinstance(check(leaf, [inter], root, role=PeerRole.CLIENT), Accepted)
    assert isinstance(check(leaf, [inter], root, role=PeerRole.SERVER), Accepted)


def test_client_auth_only_certificate_is_refused_as_a_server(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, dns=[NAME], eku=[CLIENT_AUTH])
    assert isinstance(check(leaf, [inter], root, role=PeerRole.CLIENT), Accepted)
    verdict = refused(check(leaf, [inter], root), RefusalReason.BAD_KEY_USAGE)
    assert verdict.explanation == (
        "the certificate's extended key usage (clientAuth) does not allow a TLS server"
    )


@pytest.mark.parametrize(
    ("oid", "label"),
    [
        (ExtendedKeyUsageOID.CODE_SIGNING, "codeSigning"),
        (ExtendedKeyUsageOID.EMAIL_PROTECTION, "emailProtection"),
    ],
)
@pytest.mark.parametrize("role", list(PeerRole))
def test_code_signing_or_email_only_is_refused_in_both_roles(
    root: Issued, inter: Issued, oid: x509.ObjectIdentifier, label: str, role: PeerRole
) -> None:
    leaf = make_leaf(inter, dns=[NAME], eku=[oid])
    verdict = refused(check(leaf, [inter], root, role=role), RefusalReason.BAD_KEY_USAGE)
    assert f"({label})" in verdict.explanation


def test_no_eku_is_accepted_and_any_eku_is_not(root: Issued, inter: Issued) -> None:
    assert isinstance(check(make_leaf(inter, dns=[NAME], eku=None), [inter], root), Accepted)
    any_eku = make_leaf(inter, dns=[NAME], eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    refused(check(any_eku, [inter], root), RefusalReason.BAD_KEY_USAGE)


def test_intermediate_restricted_to_email_cannot_issue_tls(root: Issued) -> None:
    email_ca = make_ca("Email CA", issuer=root, eku=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    leaf = make_leaf(email_ca, dns=[NAME])
    verdict = refused(check(leaf, [email_ca], root), RefusalReason.BAD_KEY_USAGE)
    assert "Email CA" in verdict.explanation


def test_server_auth_restricted_intermediate_may_issue_client_certificates(root: Issued) -> None:
    server_ca = make_ca("Server CA", issuer=root, eku=[SERVER_AUTH])
    leaf = make_leaf(server_ca, dns=[NAME], eku=[SERVER_AUTH])
    assert isinstance(check(leaf, [server_ca], root, role=PeerRole.CLIENT), Accepted)


# -- bounds and key strength -------------------------------------------------------------------


def test_nine_intermediates_are_refused_naming_the_bound() -> None:
    root, chain = make_chain(9)
    leaf = make_leaf(chain[-1], dns=[NAME])
    verdict = refused(check(leaf, chain, root), RefusalReason.CHAIN_TOO_LONG)
    assert verdict.explanation == (
        "the peer sent 9 intermediate certificates; at most 8 are accepted"
    )


def test_eight_intermediates_are_within_the_bound() -> None:
    root, chain = make_chain(8)
    leaf = make_leaf(chain[-1], dns=[NAME])
    assert isinstance(check(leaf, chain, root), Accepted)


def test_depth_bound_names_its_value() -> None:
    root, chain = make_chain(3)
    leaf = make_leaf(chain[-1], dns=[NAME])
    verdict = check(leaf, chain, root, limits=ChainLimits(max_chain_depth=2))
    assert "bound of 2" in refused(verdict, RefusalReason.CHAIN_TOO_LONG).explanation


def test_fifty_deep_chain_is_refused_fast() -> None:
    root, chain = make_chain(50)
    leaf = make_leaf(chain[-1], dns=[NAME])
    anchors = AnchorSet((root.cert,))
    started = time.perf_counter()
    verdict = check(leaf, chain, anchors)
    elapsed = time.perf_counter() - started
    refused(verdict, RefusalReason.CHAIN_TOO_LONG)
    assert elapsed < 0.05


def test_limits_are_validated() -> None:
    with pytest.raises(InvalidVerifyInput, match="max_intermediates -1"):
        ChainLimits(max_intermediates=-1)


def test_rsa_1024_leaf_is_a_weak_key(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, dns=[NAME], key=rsa_key(1024))
    verdict = refused(check(leaf, [inter], root), RefusalReason.WEAK_KEY)
    assert "1024-bit RSA key" in verdict.explanation
    assert isinstance(
        check(make_leaf(inter, dns=[NAME], key=rsa_key(2048)), [inter], root), Accepted
    )


# -- anchors and their scope -------------------------------------------------------------------


def test_chain_reaching_only_a_bootstrap_anchor_is_refused_except_for_registration() -> None:
    platform_root = make_ca("Platform Root")
    bootstrap_root = make_ca("Bootstrap Root")
    leaf = make_leaf(bootstrap_root, dns=[NAME])
    anchors = AnchorSet(platform=(platform_root.cert,), registration_only=(bootstrap_root.cert,))
    verdict = refused(check(leaf, [], anchors), RefusalReason.BOOTSTRAP_ONLY)
    assert fingerprint(bootstrap_root.cert) in verdict.explanation
    assert "registration only" in verdict.explanation
    accepted = check(leaf, [], anchors, use=Use.REGISTRATION)
    assert isinstance(accepted, Accepted)
    assert accepted.via_bootstrap


def test_platform_chain_is_not_marked_bootstrap() -> None:
    platform_root = make_ca("Platform Root")
    bootstrap_root = make_ca("Bootstrap Root")
    anchors = AnchorSet(platform=(platform_root.cert,), registration_only=(bootstrap_root.cert,))
    leaf = make_leaf(platform_root, dns=[NAME])
    verdict = check(leaf, [], anchors)
    assert isinstance(verdict, Accepted)
    assert not verdict.via_bootstrap
    unknown = make_leaf(make_ca("Elsewhere"), dns=[NAME])
    refused(check(unknown, [], anchors), RefusalReason.UNTRUSTED_ISSUER)


def test_no_anchors_at_all_is_untrusted(inter: Issued) -> None:
    verdict = refused(
        check(make_leaf(inter, dns=[NAME]), [inter], AnchorSet()), RefusalReason.UNTRUSTED_ISSUER
    )
    assert "no trust anchors are configured for platform use" in verdict.explanation


def test_anchor_sets_are_reused_for_the_same_anchors(root: Issued) -> None:
    assert anchor_set_for([root.cert]) is anchor_set_for([root.cert])
    assert anchor_set_for([root.cert]) is not anchor_set_for([root.cert], [make_ca().cert])


# -- reading chains ----------------------------------------------------------------------------


def test_load_chain_reads_pem_and_der(root: Issued, inter: Issued) -> None:
    leaf = make_leaf(inter, dns=[NAME])
    got_leaf, got_rest = load_chain(leaf.pem + inter.pem)
    assert got_leaf == leaf.cert
    assert got_rest == [inter.cert]
    der_leaf, der_rest = load_chain(leaf.cert.public_bytes(Encoding.DER))
    assert der_leaf == leaf.cert
    assert der_rest == []


@pytest.mark.parametrize(
    "data", [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n"]
)
def test_load_chain_refuses_garbage(data: bytes) -> None:
    with pytest.raises(ChainParseError, match="no readable certificate"):
        load_chain(data)
