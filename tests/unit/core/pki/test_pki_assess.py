"""assess(): every status, its accepting twin, severity order and warnings."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import certifi
import pytest

import certs
from hybridge.core.pki import SEVERITY, Assessment, Status, assess, load_certificates

#: The day these tests reason about: after Baltimore CyberTrust Root expired (2025-05-12).
AT = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def real(filename: str) -> certs.x509.Certificate:
    parsed = load_certificates(certs.real_root(filename))
    assert parsed[0].certificate is not None
    return parsed[0].certificate


# --- valid --------------------------------------------------------------------------------


def test_valid_ca(root: certs.Issued) -> None:
    result = assess(root.certificate, AT)
    assert result == Assessment(Status.VALID, (), (), (certs.NOT_AFTER - AT).days)
    assert result.expires_in_days == 2956


@pytest.mark.parametrize("key_type", ["rsa", "ec", "ed25519", "ed448"])
def test_valid_for_every_modern_key_type(key_type: str) -> None:
    issued = certs.build(f"{key_type} root", key_type=key_type)  # type: ignore[arg-type]
    assert assess(issued.certificate, AT).status is Status.VALID


def test_valid_intermediate(intermediate: certs.Issued) -> None:
    assert assess(intermediate.certificate, AT).status is Status.VALID


# --- expired / not yet valid, with the boundaries --------------------------------------------


def test_expired(root: certs.Issued) -> None:
    at = certs.NOT_AFTER + dt.timedelta(seconds=1)
    result = assess(root.certificate, at)
    assert result.status is Status.EXPIRED
    assert result.problems == ("it expired on 2035-01-01 (less than a day before 2035-01-01)",)
    assert result.expires_in_days == 0


def test_expired_long_ago_counts_whole_days(root: certs.Issued) -> None:
    result = assess(root.certificate, certs.NOT_AFTER + dt.timedelta(days=2, hours=23))
    assert result.problems == ("it expired on 2035-01-01 (2 days before 2035-01-03)",)
    assert result.expires_in_days == -2


def test_last_second_of_validity_is_still_valid(root: certs.Issued) -> None:
    # RFC 5280 §4.1.2.5: notAfter itself is inside the validity period.
    result = assess(root.certificate, certs.NOT_AFTER)
    assert result.status is Status.VALID
    assert result.warnings == ("expires in 0 days (2035-01-01)",)


def test_not_yet_valid(root: certs.Issued) -> None:
    result = assess(root.certificate, certs.NOT_BEFORE - dt.timedelta(seconds=1))
    assert result.status is Status.NOT_YET_VALID
    assert result.problems == ("it is not valid before 2025-01-01",)


def test_first_second_of_validity_is_valid(root: certs.Issued) -> None:
    assert assess(root.certificate, certs.NOT_BEFORE).status is Status.VALID


def test_baltimore_cybertrust_root_is_expired_on_the_day() -> None:
    # The seed's list names it; it expired on 2025-05-12 and certifi dropped it, so the
    # real certificate is kept under tests/data/pki.
    result = assess(real("baltimore-cybertrust-root.pem"), AT)
    assert result.status is Status.EXPIRED
    assert result.problems == ("it expired on 2025-05-12 (563 days before 2026-11-27)",)
    assert result.expires_in_days == -563


def test_baltimore_cybertrust_root_was_valid_before_with_a_warning() -> None:
    result = assess(real("baltimore-cybertrust-root.pem"), dt.datetime(2025, 5, 1, tzinfo=dt.UTC))
    assert result.status is Status.VALID
    assert result.warnings == ("expires in 11 days (2025-05-12)",)


def test_gte_cybertrust_global_root_equivalent_is_expired() -> None:
    # The seed's GTE CyberTrust Global Root (expired 2018-08-13) is in no bundle we can
    # copy from, so this is its twin: version 1, RSA 1024, MD5 self-signature.
    gte = certs.build(
        "GTE CyberTrust Global Root",
        key=certs.new_key("rsa", 1024),
        signature_hash="md5",
        version=1,
        not_before=dt.datetime(1998, 8, 13, 0, 29, tzinfo=dt.UTC),
        not_after=dt.datetime(2018, 8, 13, 23, 59, tzinfo=dt.UTC),
    )
    result = assess(gte.certificate, AT)
    assert result.status is Status.EXPIRED
    assert result.problems == (
        "it expired on 2018-08-13 (3027 days before 2026-11-27)",
        "its RSA key has 1024 bits, fewer than 2048",
    )
    assert result.warnings == (
        "it is a version 1 certificate with no extensions, taken as a CA because it is a "
        "self-signed trust anchor",
    )


# --- weak ---------------------------------------------------------------------------------


def test_weak_rsa_1024() -> None:
    result = assess(certs.build("Small", key_type="rsa", key_size=1024).certificate, AT)
    assert result.status is Status.WEAK
    assert result.problems == ("its RSA key has 1024 bits, fewer than 2048",)


def test_rsa_2048_is_not_weak() -> None:
    assert assess(certs.build("Enough", key_type="rsa", key_size=2048).certificate, AT).status is (
        Status.VALID
    )


def test_weak_dsa() -> None:
    result = assess(certs.build("DSA", key_type="dsa", key_size=2048).certificate, AT)
    assert result.status is Status.WEAK
    assert result.problems == ("its key is DSA (2048 bits), which FIPS 186-5 withdrew",)


@pytest.mark.parametrize(
    ("signature_hash", "issuer_key", "named"),
    [
        ("md5", "rsa", "MD5 (md5WithRSAEncryption)"),
        ("sha1", "rsa", "SHA-1 (sha1WithRSAEncryption)"),
        ("sha1", "ec", "SHA-1 (ecdsa-with-SHA1)"),
    ],
)
def test_weak_signature_on_a_certificate_that_is_not_self_signed(
    signature_hash: str, issuer_key: str, named: str
) -> None:
    issuer = certs.build(f"{issuer_key} issuer", key_type=issuer_key)  # type: ignore[arg-type]
    issued = certs.build(
        "Weakly Signed",
        issuer=issuer,
        key=certs.new_key("ec"),
        signature_hash=signature_hash,  # type: ignore[arg-type]
    )
    result = assess(issued.certificate, AT)
    assert result.status is Status.WEAK
    assert result.problems == (
        f"it is signed with {named}, which is broken for certificate signatures",
    )


@pytest.mark.parametrize(
    ("signature_hash", "key_type"), [("md5", "rsa"), ("sha1", "rsa"), ("sha1", "ec")]
)
def test_weak_hash_on_a_self_signed_root_is_not_weak(signature_hash: str, key_type: str) -> None:
    # The signature on a trust anchor is never relied upon: only its key and name are.
    issued = certs.build("Old Root", key_type=key_type, signature_hash=signature_hash)  # type: ignore[arg-type]
    result = assess(issued.certificate, AT)
    assert result.status is Status.VALID
    assert result.problems == ()


# --- invalid ------------------------------------------------------------------------------


def test_tampered_self_signed_root_is_invalid(root: certs.Issued) -> None:
    parsed = load_certificates(certs.tamper_signature(root.certificate))[0]
    assert parsed.certificate is not None
    result = assess(parsed.certificate, AT)
    assert result.status is Status.INVALID
    assert result.problems == (
        "its self-signature does not verify with its own key: the certificate is corrupted "
        "or forged",
    )


def test_root_name_signed_by_another_key_is_invalid(root: certs.Issued) -> None:
    forger = certs.Issued(root.certificate, certs.new_key("rsa"))
    forged = certs.build("Hybridge Test Root", issuer=forger, key=certs.cached_key("rsa", 2048))
    assert assess(forged.certificate, AT).status is Status.INVALID


def test_tampered_md5_root_is_invalid_too() -> None:
    old = certs.build("Old MD5 Root", key_type="rsa", signature_hash="md5")
    parsed = load_certificates(certs.tamper_signature(old.certificate))[0]
    assert parsed.certificate is not None
    assert assess(parsed.certificate, AT).status is Status.INVALID


def test_signature_of_a_non_self_signed_certificate_is_not_checked_here(
    intermediate: certs.Issued,
) -> None:
    # Without its issuer there is nothing to check it against: path validation does that.
    parsed = load_certificates(certs.tamper_signature(intermediate.certificate))[0]
    assert parsed.certificate is not None
    assert assess(parsed.certificate, AT).status is Status.VALID


# --- not a CA -----------------------------------------------------------------------------


def test_leaf_is_not_a_ca(leaf: certs.Issued) -> None:
    result = assess(leaf.certificate, AT)
    assert result.status is Status.NOT_A_CA
    assert result.problems == ("it is not a CA certificate: its basicConstraints says cA FALSE",)


def test_missing_basic_constraints_is_not_a_ca() -> None:
    result = assess(certs.build("No BC", basic_constraints=False).certificate, AT)
    assert result.status is Status.NOT_A_CA
    assert result.problems == (
        "it is not a CA certificate: it has no basicConstraints (RFC 5280 §4.2.1.9)",
    )


def test_ca_whose_key_usage_forbids_certificate_signing_is_not_a_ca() -> None:
    result = assess(certs.build("Bad KU", key_usage=("digital_signature",)).certificate, AT)
    assert result.status is Status.NOT_A_CA
    assert result.problems == (
        "its keyUsage does not include keyCertSign, so it cannot sign certificates "
        "(RFC 5280 §4.2.1.3)",
    )


def test_ca_without_key_usage_extension_is_a_ca() -> None:
    assert assess(certs.build("No KU", key_usage=()).certificate, AT).status is Status.VALID


def test_version_1_self_signed_root_is_a_ca_with_a_warning() -> None:
    result = assess(certs.build("V1 Root", key_type="rsa", version=1).certificate, AT)
    assert result.status is Status.VALID
    assert result.warnings == (
        "it is a version 1 certificate with no extensions, taken as a CA because it is a "
        "self-signed trust anchor",
    )


def test_version_1_certificate_not_self_signed_is_not_a_ca(root: certs.Issued) -> None:
    issued = certs.build("V1 Sub", issuer=root, key=certs.new_key("ec"), version=1)
    result = assess(issued.certificate, AT)
    assert result.status is Status.NOT_A_CA
    assert "version 1 certificate that is not self-signed" in result.problems[0]


def test_real_version_1_root_is_a_ca() -> None:
    result = assess(real("verisign-class-3-g3-v1.pem"), AT)
    assert result.status is Status.VALID
    assert result.warnings[0].startswith("it is a version 1 certificate")


# --- several problems at once: severity order, every problem listed ---------------------------


def test_every_problem_is_listed_and_the_most_severe_wins(root: certs.Issued) -> None:
    issued = certs.build(
        "Everything Wrong",
        issuer=root,
        key=certs.new_key("rsa", 1024),
        is_ca=False,
        signature_hash="sha1",
        not_after=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    result = assess(issued.certificate, AT)
    assert result.status is Status.EXPIRED
    assert result.problems == (
        "it expired on 2026-01-01 (330 days before 2026-11-27)",
        "its RSA key has 1024 bits, fewer than 2048",
        "it is signed with SHA-1 (sha1WithRSAEncryption), which is broken for certificate "
        "signatures",
        "it is not a CA certificate: its basicConstraints says cA FALSE",
    )


def test_invalid_beats_expired(root: certs.Issued) -> None:
    parsed = load_certificates(certs.tamper_signature(root.certificate))[0]
    assert parsed.certificate is not None
    result = assess(parsed.certificate, certs.NOT_AFTER + dt.timedelta(days=3))
    assert result.status is Status.INVALID
    assert len(result.problems) == 2
    assert result.problems[1].startswith("it expired on 2035-01-01")


def test_not_yet_valid_beats_weak() -> None:
    issued = certs.build(
        "Future Small",
        key_type="rsa",
        key_size=1024,
        not_before=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
    )
    result = assess(issued.certificate, AT)
    assert result.status is Status.NOT_YET_VALID
    assert len(result.problems) == 2


def test_weak_beats_not_a_ca() -> None:
    issued = certs.build("Small Leaf", key_type="rsa", key_size=1024, is_ca=False)
    assert assess(issued.certificate, AT).status is Status.WEAK


def test_severity_order() -> None:
    assert [s.value for s in SEVERITY] == [
        "invalid",
        "expired",
        "not_yet_valid",
        "weak",
        "not_a_ca",
        "valid",
    ]
    assert set(SEVERITY) == set(Status)


# --- warnings -----------------------------------------------------------------------------


def test_expires_soon_warning() -> None:
    issued = certs.build("Soon", not_after=dt.datetime(2026, 12, 9, 12, 0, tzinfo=dt.UTC))
    result = assess(issued.certificate, AT)
    assert result.status is Status.VALID
    assert result.warnings == ("expires in 12 days (2026-12-09)",)
    assert result.expires_in_days == 12


def test_expires_soon_respects_warn_days() -> None:
    issued = certs.build("Soon", not_after=dt.datetime(2026, 12, 9, 12, 0, tzinfo=dt.UTC))
    assert assess(issued.certificate, AT, warn_days=11).warnings == ()
    assert assess(issued.certificate, AT, warn_days=12).warnings == (
        "expires in 12 days (2026-12-09)",
    )


def test_expires_tomorrow_says_one_day() -> None:
    issued = certs.build("Tomorrow", not_after=AT + dt.timedelta(days=1, hours=1))
    assert assess(issued.certificate, AT).warnings == ("expires in 1 day (2026-11-28)",)


@pytest.mark.parametrize("serial", [0, -5])
def test_non_positive_serial_is_a_warning_not_a_status(serial: int) -> None:
    parsed = load_certificates(certs.build("Odd Serial", serial=serial).der)[0]
    assert parsed.certificate is not None
    result = assess(parsed.certificate, AT)
    assert result.status is Status.VALID
    assert result.warnings == (
        f"its serial number {serial} is not positive (RFC 5280 §4.1.2.2); accepted because "
        "real roots carry such serials",
    )


@pytest.mark.parametrize("filename", ["go-daddy-class-2-ca.pem", "ec-acc.pem"])
def test_real_roots_with_non_positive_serials_get_a_status(filename: str) -> None:
    result = assess(real(filename), AT)
    assert result.status is Status.VALID
    assert "is not positive" in result.warnings[0]


# --- time handling ------------------------------------------------------------------------


def test_at_must_be_timezone_aware(root: certs.Issued) -> None:
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        assess(root.certificate, dt.datetime(2026, 11, 27))


def test_warn_days_must_not_be_negative(root: certs.Issued) -> None:
    with pytest.raises(ValueError, match="warn_days must be 0 or more, not -1"):
        assess(root.certificate, AT, warn_days=-1)


def test_other_time_zones_give_the_same_answer() -> None:
    issued = certs.build("Soon", not_after=dt.datetime(2026, 12, 9, 12, 0, tzinfo=dt.UTC))
    tokyo = AT.astimezone(dt.timezone(dt.timedelta(hours=9)))
    assert assess(issued.certificate, tokyo) == assess(issued.certificate, AT)


def test_assessment_is_validated() -> None:
    with pytest.raises(ValueError, match="does not match problems"):
        Assessment(Status.VALID, ("a problem",), (), 1)
    with pytest.raises(ValueError, match="does not match problems"):
        Assessment(Status.EXPIRED, (), (), -1)


def test_status_values_are_the_json_strings() -> None:
    assert {s.value for s in Status} == {
        "valid",
        "not_a_ca",
        "not_yet_valid",
        "expired",
        "weak",
        "invalid",
    }
    assert f"{Status.NOT_A_CA}" == "not_a_ca"


def test_whole_certifi_bundle_gets_a_status_each() -> None:
    with open(certifi.where(), "rb") as handle:
        parsed = load_certificates(handle.read())
    statuses = Counter(assess(p.certificate, AT).status for p in parsed if p.certificate)
    assert sum(statuses.values()) == len(parsed)
    # Every root Mozilla ships is genuine: none may come out invalid.
    assert Status.INVALID not in statuses
    assert Status.NOT_A_CA not in statuses
