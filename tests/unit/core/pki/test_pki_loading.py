"""load_certificates: every input format, and a rejecting twin for every malformed input."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import subprocess
import time
import warnings

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import certs
from hybridge.core.errors import HybridgeError
from hybridge.core.pki import (
    MAX_INPUT_BYTES,
    InputTooLarge,
    MalformedInput,
    NoCertificates,
    ParsedCertificate,
    PkiError,
    assess,
    describe,
    load_certificates,
    to_pem,
)


def ders(parsed: tuple[ParsedCertificate, ...]) -> list[bytes]:
    return [p.der for p in parsed]


def only_good(parsed: tuple[ParsedCertificate, ...]) -> None:
    for p in parsed:
        assert p.error is None, p.error
        assert p.certificate is not None


# --- accepted formats ---------------------------------------------------------------------


def test_single_pem_certificate(root: certs.Issued) -> None:
    parsed = load_certificates(root.pem)
    assert len(parsed) == 1
    assert parsed[0].index == 0
    assert parsed[0].der == root.der
    assert parsed[0].certificate == root.certificate
    assert parsed[0].error is None


def test_pem_with_text_around_and_many_blocks(
    root: certs.Issued, intermediate: certs.Issued, leaf: certs.Issued
) -> None:
    data = (
        b"Bundle exported by hand\n# Issuer: CN=Hybridge Test Root\n\n"
        + root.pem
        + b"\nsome words between the blocks: -----not a marker\n"
        + intermediate.pem
        + leaf.pem
        + b"trailing text without newline"
    )
    parsed = load_certificates(data)
    only_good(parsed)
    assert [p.index for p in parsed] == [0, 1, 2]
    assert ders(parsed) == [root.der, intermediate.der, leaf.der]


def test_pem_with_crlf_line_ends_equals_lf(root: certs.Issued, leaf: certs.Issued) -> None:
    lf = b"header\n" + root.pem + b"\n" + leaf.pem
    crlf = lf.replace(b"\n", b"\r\n")
    assert b"\r\n" in crlf
    assert load_certificates(crlf) == load_certificates(lf)


def test_pem_with_old_mac_cr_line_ends(root: certs.Issued) -> None:
    assert ders(load_certificates(root.pem.replace(b"\n", b"\r"))) == [root.der]


def test_x509_certificate_label_is_accepted(root: certs.Issued) -> None:
    # RFC 7468 §5.1: parsers may accept "X509 CERTIFICATE" and "X.509 CERTIFICATE".
    for label in (b"X509 CERTIFICATE", b"X.509 CERTIFICATE"):
        data = root.pem.replace(b"CERTIFICATE", label)
        assert ders(load_certificates(data)) == [root.der]


def test_openssl_trusted_certificate_block(tmp_path, root: certs.Issued) -> None:
    source = tmp_path / "root.pem"
    source.write_bytes(root.pem)
    trusted = subprocess.run(
        ["openssl", "x509", "-in", str(source), "-addtrust", "serverAuth", "-trustout"],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    assert b"-----BEGIN TRUSTED CERTIFICATE-----" in trusted
    # The block holds the certificate followed by OpenSSL's trust settings: we keep the
    # certificate only, byte for byte.
    assert ders(load_certificates(trusted)) == [root.der]


def test_private_key_block_next_to_certificate_is_ignored(root: certs.Issued) -> None:
    key_pem = certs.new_key("ec").private_bytes(
        Encoding.PEM,
        certs.serialization.PrivateFormat.PKCS8,
        certs.serialization.NoEncryption(),
    )
    assert ders(load_certificates(key_pem + root.pem)) == [root.der]


def test_der_certificate(root: certs.Issued) -> None:
    parsed = load_certificates(root.der)
    assert ders(parsed) == [root.der]
    only_good(parsed)


def test_pkcs7_der_from_cryptography(root: certs.Issued, ec_root: certs.Issued) -> None:
    bundle = pkcs7.serialize_certificates([root.certificate, ec_root.certificate], Encoding.DER)
    parsed = load_certificates(bundle)
    only_good(parsed)
    # DER sorts a SET OF, so cryptography may reorder: compare as sets, indexes in order.
    assert sorted(ders(parsed)) == sorted([root.der, ec_root.der])
    assert [p.index for p in parsed] == [0, 1]


def test_pkcs7_pem_from_cryptography(root: certs.Issued, leaf: certs.Issued) -> None:
    bundle = pkcs7.serialize_certificates([root.certificate, leaf.certificate], Encoding.PEM)
    assert bundle.startswith(b"-----BEGIN PKCS7-----")
    assert sorted(ders(load_certificates(b"text before\r\n" + bundle))) == sorted(
        [root.der, leaf.der]
    )


def test_pkcs7_keeps_input_order(
    root: certs.Issued, intermediate: certs.Issued, leaf: certs.Issued
) -> None:
    bundle = certs.pkcs7_der([leaf.der, root.der, intermediate.der])
    assert ders(load_certificates(bundle)) == [leaf.der, root.der, intermediate.der]


def test_pkcs7_from_openssl_crl2pkcs7(tmp_path, root: certs.Issued, leaf: certs.Issued) -> None:
    (tmp_path / "in.pem").write_bytes(root.pem + leaf.pem)
    out = subprocess.run(
        [
            "openssl",
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            str(tmp_path / "in.pem"),
            "-outform",
            "DER",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    assert sorted(ders(load_certificates(out))) == sorted([root.der, leaf.der])


def test_pkcs7_with_ber_indefinite_lengths(root: certs.Issued, leaf: certs.Issued) -> None:
    bundle = certs.pkcs7_ber_indefinite([root.der, leaf.der])
    assert bundle[1] == 0x80  # really indefinite at the top
    assert ders(load_certificates(bundle)) == [root.der, leaf.der]


def test_est_cacerts_base64_pkcs7_without_armour(root: certs.Issued, leaf: certs.Issued) -> None:
    # RFC 7030 §4.1.3: /cacerts answers application/pkcs7-mime, base64, no PEM armour.
    bundle = pkcs7.serialize_certificates([root.certificate, leaf.certificate], Encoding.DER)
    for body in (base64.encodebytes(bundle), base64.b64encode(bundle)):
        crlf = body.replace(b"\n", b"\r\n")
        for data in (body, crlf):
            assert sorted(ders(load_certificates(data))) == sorted([root.der, leaf.der])


def test_base64_der_certificate_without_armour(root: certs.Issued) -> None:
    assert ders(load_certificates(base64.b64encode(root.der) + b"\n")) == [root.der]


def test_bytearray_and_memoryview_inputs(root: certs.Issued) -> None:
    assert ders(load_certificates(bytearray(root.pem))) == [root.der]  # type: ignore[arg-type]


def test_to_pem_round_trips_and_openssl_reads_it(tmp_path, ec_root: certs.Issued) -> None:
    pem = to_pem(ec_root.der)
    assert pem.startswith("-----BEGIN CERTIFICATE-----\n")
    assert pem.endswith("-----END CERTIFICATE-----\n")
    assert all(len(line) <= 64 for line in pem.splitlines())
    assert ders(load_certificates(pem.encode())) == [ec_root.der]
    (tmp_path / "c.pem").write_text(pem)
    der = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "c.pem"), "-outform", "DER"],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    assert der == ec_root.der


# --- one bad certificate inside a good container ------------------------------------------


def test_bad_block_in_pem_bundle_is_reported_by_index(
    root: certs.Issued, leaf: certs.Issued
) -> None:
    bogus = (
        b"-----BEGIN CERTIFICATE-----\n"
        + base64.b64encode(b"\x30\x03\x02\x01\x05")
        + (b"\n-----END CERTIFICATE-----\n")
    )
    parsed = load_certificates(root.pem + bogus + leaf.pem)
    assert [p.index for p in parsed] == [0, 1, 2]
    assert parsed[0].certificate is not None
    assert parsed[2].certificate is not None
    assert parsed[1].certificate is None
    assert parsed[1].der == b"\x30\x03\x02\x01\x05"
    assert parsed[1].error is not None
    assert parsed[1].error.startswith("not a valid X.509 certificate: ")


def test_bad_certificate_in_pkcs7_is_reported_by_index(
    root: certs.Issued, leaf: certs.Issued
) -> None:
    broken = bytearray(leaf.der)
    broken[4:7] = b"\x04\x01\x00"  # TBSCertificate header replaced: not a certificate now
    parsed = load_certificates(certs.pkcs7_der([root.der, bytes(broken), leaf.der]))
    assert [p.error is None for p in parsed] == [True, False, True]
    assert parsed[1].index == 1
    assert parsed[1].der == bytes(broken)
    assert "not a valid X.509 certificate" in (parsed[1].error or "")


def test_single_der_certificate_that_does_not_parse_gets_an_error(root: certs.Issued) -> None:
    broken = bytearray(root.der)
    assert broken[13] == 0x02  # the serialNumber INTEGER after the [0] version
    broken[13] = 0x04  # now an OCTET STRING: the container shape stays intact
    parsed = load_certificates(bytes(broken))
    assert len(parsed) == 1
    assert parsed[0].certificate is None
    assert parsed[0].error is not None


def test_unsupported_certificate_version_is_an_error_not_a_crash(root: certs.Issued) -> None:
    fields = certs.der_children(certs.der_content(root.certificate.tbs_certificate_bytes))
    fields[0] = certs.der_tlv(0xA0, certs.der_integer(7))  # version 8: no such thing
    tbs = certs.der_tlv(0x30, b"".join(fields))
    outer = certs.der_children(certs.der_content(root.der))
    der = certs.assemble(tbs, outer[1], b"\x00" * 256)
    parsed = load_certificates(der)
    assert parsed[0].certificate is None
    assert "version" in (parsed[0].error or "").lower()


def test_parsed_certificate_is_validated() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ParsedCertificate(0, b"x", None, None)
    with pytest.raises(ValueError, match="index must be 0 or more"):
        ParsedCertificate(-1, b"x", None, "bad")


# --- whole-input problems ------------------------------------------------------------------


def test_truncated_pem_is_malformed(root: certs.Issued) -> None:
    cut = root.pem[: len(root.pem) // 2]
    with pytest.raises(
        MalformedInput,
        match=(
            r"PEM block 1 \('CERTIFICATE'\) that begins on line 1 has no END line; "
            "the input looks truncated"
        ),
    ):
        load_certificates(cut)


def test_truncated_pem_in_the_middle_of_a_bundle_is_malformed(
    root: certs.Issued, leaf: certs.Issued
) -> None:
    cut = root.pem[:200] + b"\n" + leaf.pem
    with pytest.raises(MalformedInput, match="has no END line before the next BEGIN on line"):
        load_certificates(cut)


def test_mismatched_pem_labels_are_malformed(root: certs.Issued) -> None:
    data = root.pem.replace(b"END CERTIFICATE", b"END PKCS7")
    with pytest.raises(
        MalformedInput, match="begins as 'CERTIFICATE' on line 1 but ends as 'PKCS7'"
    ):
        load_certificates(data)


def test_end_line_without_begin_is_malformed(root: certs.Issued) -> None:
    with pytest.raises(MalformedInput, match="line 1 has an END line"):
        load_certificates(b"-----END CERTIFICATE-----\n" + root.pem)


def test_bad_base64_in_pem_block_is_malformed(root: certs.Issued) -> None:
    lines = root.pem.split(b"\n")
    lines[3] = b"!!!!" + lines[3][4:]
    with pytest.raises(
        MalformedInput,
        match=r"PEM block 1 \('CERTIFICATE'\) that begins on line 1 is not valid base64",
    ):
        load_certificates(b"\n".join(lines))


def test_der_with_trailing_garbage_is_malformed(root: certs.Issued) -> None:
    with pytest.raises(
        MalformedInput,
        match=(
            "the DER certificate is malformed: 3 bytes of trailing data after the "
            f"{len(root.der):,}-byte value"
        ),
    ):
        load_certificates(root.der + b"\x00ab")


def test_truncated_der_is_malformed(root: certs.Issued) -> None:
    with pytest.raises(
        MalformedInput, match=r"the DER certificate is malformed: .* looks truncated"
    ):
        load_certificates(root.der[:-10])


def test_pkcs7_der_with_trailing_garbage_is_malformed(root: certs.Issued) -> None:
    with pytest.raises(MalformedInput, match="the DER PKCS#7 is malformed: 1 bytes of trailing"):
        load_certificates(certs.pkcs7_der([root.der]) + b"\n")


@pytest.mark.parametrize("with_field", [True, False])
def test_pkcs7_with_no_certificates(with_field: bool) -> None:
    empty = certs.pkcs7_der([], with_certificates_field=with_field)
    with pytest.raises(NoCertificates, match="the PKCS#7 structure holds no certificate"):
        load_certificates(empty)
    pem = b"-----BEGIN PKCS7-----\n" + base64.encodebytes(empty) + b"-----END PKCS7-----\n"
    with pytest.raises(NoCertificates, match="the PKCS#7 structure holds no certificate"):
        load_certificates(pem)
    with pytest.raises(NoCertificates, match="the PKCS#7 structure holds no certificate"):
        load_certificates(base64.b64encode(empty))


def test_pkcs7_with_no_certificates_from_openssl(tmp_path) -> None:
    out = subprocess.run(
        ["openssl", "crl2pkcs7", "-nocrl", "-outform", "DER"],
        check=True,
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    ).stdout
    with pytest.raises(NoCertificates, match="holds no certificate"):
        load_certificates(out)


def test_pem_pkcs7_block_of_another_content_type_is_malformed() -> None:
    data_content = certs.der_tlv(0x30, certs.der_oid(certs.DATA_OID))
    pem = b"-----BEGIN PKCS7-----\n" + base64.encodebytes(data_content) + b"-----END PKCS7-----\n"
    with pytest.raises(
        MalformedInput,
        match=(
            r"PEM block 1 \('PKCS7'\) is not a valid PKCS#7 SignedData: "
            "its content type is not signedData"
        ),
    ):
        load_certificates(pem)


@pytest.mark.parametrize("data", [b"", b"   \r\n\t\n"])
def test_empty_input(data: bytes) -> None:
    with pytest.raises(NoCertificates, match="the input is empty; expected PEM, DER or PKCS#7"):
        load_certificates(data)


def test_binary_file() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    with pytest.raises(
        NoCertificates,
        match=r"no certificate found in 1,032 bytes of binary data starting b'\\x89PNG",
    ):
        load_certificates(png)


def test_text_that_starts_like_der_is_not_called_der() -> None:
    # "00 ..." is 0x30 0x30: a SEQUENCE header to a DER sniffer, but this is text.
    text = b"00 01 02 03 04 05\n"
    with pytest.raises(NoCertificates) as caught:
        load_certificates(text)
    assert str(caught.value).startswith("no certificate found in 18 bytes of text; expected PEM")


def test_plain_text_file() -> None:
    with pytest.raises(NoCertificates) as caught:
        load_certificates(b"hello, world")
    assert str(caught.value) == (
        "no certificate found in 12 bytes of text; expected PEM "
        "(-----BEGIN CERTIFICATE-----), DER, or PKCS#7 (.p7b/.p7c, PEM, DER or base64)"
    )


def test_pem_with_only_a_private_key_names_the_label_but_not_the_key() -> None:
    key_pem = certs.new_key("ec").private_bytes(
        Encoding.PEM,
        certs.serialization.PrivateFormat.PKCS8,
        certs.serialization.NoEncryption(),
    )
    with pytest.raises(NoCertificates) as caught:
        load_certificates(key_pem)
    message = str(caught.value)
    assert message == (
        "the PEM input holds no certificate, only 'PRIVATE KEY'; expected CERTIFICATE or "
        "PKCS7 blocks"
    )
    body_line = key_pem.split(b"\n")[1].decode()
    assert body_line not in message


def test_unrecognised_binary_key_is_not_quoted_beyond_its_header() -> None:
    sec1 = certs.new_key("ec").private_bytes(
        Encoding.DER,
        certs.serialization.PrivateFormat.TraditionalOpenSSL,
        certs.serialization.NoEncryption(),
    )
    with pytest.raises(NoCertificates) as caught:
        load_certificates(sec1)
    assert repr(sec1[7:11])[2:-1] not in str(caught.value)  # the private scalar
    assert repr(sec1[:4]) in str(caught.value)


def test_broken_base64_without_armour_is_malformed() -> None:
    with pytest.raises(MalformedInput, match=r"looks like base64 .* but does not decode"):
        load_certificates(b"MIIBnotbase64=x")


def test_base64_of_something_else_is_malformed() -> None:
    with pytest.raises(MalformedInput, match="which is not a DER certificate or PKCS#7"):
        load_certificates(base64.b64encode(b"\x31\x00hello"))


def test_fifty_megabytes_are_refused_quickly_naming_the_limit() -> None:
    data = b"A" * (50 * 1024 * 1024)
    started = time.perf_counter()
    with pytest.raises(InputTooLarge) as caught:
        load_certificates(data)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5
    assert str(caught.value) == (
        "the input is 52,428,800 bytes, over the limit of 16,777,216 bytes (16 MiB); "
        "certificate files up to that size are accepted"
    )
    assert MAX_INPUT_BYTES == 16 * 1024 * 1024


def test_the_limit_is_a_parameter(root: certs.Issued) -> None:
    assert ders(load_certificates(root.der, max_bytes=len(root.der))) == [root.der]
    with pytest.raises(InputTooLarge, match=f"over the limit of {len(root.der) - 1:,} bytes"):
        load_certificates(root.der, max_bytes=len(root.der) - 1)
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        load_certificates(root.der, max_bytes=0)


def test_errors_are_hybridge_errors() -> None:
    for error in (InputTooLarge, NoCertificates, MalformedInput):
        assert issubclass(error, PkiError)
    assert issubclass(PkiError, HybridgeError)


# --- real bundles -------------------------------------------------------------------------


def test_whole_certifi_bundle_loads() -> None:
    data = open(certifi.where(), "rb").read()  # noqa: SIM115
    parsed = load_certificates(data)
    # Independent count and independent parse of the same file.
    assert len(parsed) == data.count(b"-----BEGIN CERTIFICATE-----")
    assert len(parsed) > 100
    only_good(parsed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # certifi has serial-0 roots; cryptography warns
        reference = x509.load_pem_x509_certificates(data)
    assert [p.certificate for p in parsed] == reference
    assert ders(parsed) == [c.public_bytes(Encoding.DER) for c in reference]


def test_whole_certifi_bundle_with_crlf_is_identical() -> None:
    data = open(certifi.where(), "rb").read()  # noqa: SIM115
    assert load_certificates(data.replace(b"\n", b"\r\n")) == load_certificates(data)


@pytest.mark.parametrize(
    "filename",
    [
        "baltimore-cybertrust-root.pem",
        "go-daddy-class-2-ca.pem",
        "verisign-class-3-g3-v1.pem",
        "ec-acc.pem",
    ],
)
def test_real_old_roots_load_without_warnings(filename: str, recwarn) -> None:
    parsed = load_certificates(certs.real_root(filename))
    only_good(parsed)
    assert parsed[0].certificate is not None
    describe(parsed[0].certificate)
    assess(parsed[0].certificate, dt.datetime(2026, 11, 27, tzinfo=dt.UTC))
    assert len(recwarn) == 0, [str(w.message) for w in recwarn]


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_only_raise_pki_errors(data: bytes) -> None:
    try:
        parsed = load_certificates(data)
    except PkiError:
        return
    for p in parsed:
        assert (p.certificate is None) != (p.error is None)


_SAMPLE = certs.build("Fuzz Seed", key_type="ec")
_SEEDS = [
    _SAMPLE.pem,
    _SAMPLE.der,
    certs.pkcs7_der([_SAMPLE.der, _SAMPLE.der]),
    certs.pkcs7_ber_indefinite([_SAMPLE.der]),
    base64.encodebytes(certs.pkcs7_der([_SAMPLE.der])),
]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(_SEEDS),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
    st.integers(min_value=0),
)
def test_mutated_valid_inputs_only_raise_pki_errors(
    seed: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(seed)
    for position, value in flips:
        data[position % len(data)] = value
    data = data[: len(data) - cut % 64]
    with contextlib.suppress(PkiError):
        load_certificates(bytes(data))


def test_every_prefix_of_a_pem_bundle_loads_or_raises_a_pki_error(
    root: certs.Issued, leaf: certs.Issued
) -> None:
    data = b"intro\r\n" + root.pem + leaf.pem
    outcomes: set[str] = set()
    for end in range(len(data) + 1):
        try:
            parsed = load_certificates(data[:end])
        except PkiError as exc:
            outcomes.add(type(exc).__name__)
        else:
            assert ders(parsed) in ([root.der], [root.der, leaf.der])
            outcomes.add(str(len(parsed)))
    assert outcomes == {"NoCertificates", "MalformedInput", "1", "2"}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["root", "leaf"]),
            st.text(
                alphabet=st.characters(
                    min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="-"
                ),
                max_size=40,
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_crlf_and_lf_give_identical_results(parts: list[str]) -> None:
    pems = {"root": _SAMPLE.pem.decode(), "leaf": certs.build("Fuzz Leaf").pem.decode()}
    lf = "\n".join(pems.get(part, part) for part in parts).encode()
    crlf = lf.replace(b"\n", b"\r\n")
    try:
        expected = load_certificates(lf)
    except PkiError as exc:
        with pytest.raises(type(exc)):
            load_certificates(crlf)
        return
    assert load_certificates(crlf) == expected


def test_text_input_is_never_quoted_in_the_error() -> None:
    # A password file uploaded by mistake must not end up in an error message or a log.
    secret = b"hunter2-correct-horse"
    with pytest.raises(NoCertificates) as caught:
        load_certificates(secret)
    assert "hunter2" not in str(caught.value)
