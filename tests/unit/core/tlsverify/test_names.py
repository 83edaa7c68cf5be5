"""The zone name rule, identity by identity (no path validation here: see test_verify)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridge.core.tlsverify import (
    CnRule,
    IdentitySource,
    InvalidExpectedName,
    NamePolicy,
    PresentedIdentities,
)
from hybridge.core.tlsverify.names import normalise_presented, sip_uri_host

# -- the expected name, validated on construction --------------------------------------


@pytest.mark.parametrize(
    ("given_name", "stored"),
    [
        ("callservice.example.com", "callservice.example.com"),
        ("CallService.Example.COM", "callservice.example.com"),
        ("callservice.example.com.", "callservice.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
    ],
)
def test_expected_name_is_normalised(given_name: str, stored: str) -> None:
    assert NamePolicy(given_name).expected == stored


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "call service.example.com",
        "callservice.example.com\x00.evil.com",
        "user@example.com",
        "*.example.com",
        "a..example.com",
        "-lead.example.com",
        "trail-.example.com",
        "under_score.example.com",
        "a" * 64 + ".example.com",
        ".".join(["abcdefghij"] * 24),  # 263 characters
        "xn--zz.example.com",  # not valid punycode
    ],
)
def test_expected_name_that_cannot_be_a_host_name_is_refused(bad: str) -> None:
    with pytest.raises(InvalidExpectedName) as info:
        NamePolicy(bad)
    assert repr(bad)[:30] in str(info.value) or "empty" in str(info.value)


def test_policy_is_frozen_and_defaults_are_the_safe_reading() -> None:
    policy = NamePolicy("callservice.example.com")
    assert policy.cn is CnRule.WHEN_NO_SAN
    assert policy.wildcards is False
    with pytest.raises(AttributeError):
        policy.expected = "evil.example.com"  # type: ignore[misc]


def test_cn_rule_accepts_its_string_value() -> None:
    assert NamePolicy("a.example.com", cn="never").cn is CnRule.NEVER  # type: ignore[arg-type]


# -- SAN dNSName --------------------------------------------------------------------------


def ids(*dns: str, uris: tuple[str, ...] = (), cns: tuple[str, ...] = ()) -> PresentedIdentities:
    return PresentedIdentities(dns=dns, uris=uris, common_names=cns)


def test_exact_dns_san_matches() -> None:
    match = NamePolicy("callservice.example.com").match(ids("callservice.example.com"))
    assert match is not None
    assert (match.identity, match.source) == ("callservice.example.com", IdentitySource.SAN_DNS)


@pytest.mark.parametrize(
    "presented", ["CALLSERVICE.EXAMPLE.COM", "callservice.example.com.", "CallService.Example.Com."]
)
def test_case_and_trailing_dot_variants_match(presented: str) -> None:
    assert NamePolicy("callservice.example.com").match(ids(presented)) is not None


@pytest.mark.parametrize(
    "presented",
    [
        "example.com",  # suffix of the expected name
        "service.example.com",  # no suffix matching either way
        "callservice.example.com.evil.com",
        "xcallservice.example.com",
        "callservice.example.co",
        "callservice.example.com\x00.evil.com",  # NUL truncation attack
        "callservice.example.com ",
        "callservice .example.com",
        "user@callservice.example.com",
        "cаllservice.example.com",  # Cyrillic а: not ASCII, never a dNSName
        "",
    ],
)
def test_near_misses_never_match(presented: str) -> None:
    assert NamePolicy("callservice.example.com").match(ids(presented)) is None


def test_idn_homograph_a_label_does_not_match_the_ascii_name() -> None:
    # "аpple.com" with a Cyrillic а is xn--pple-43d.com: a different name entirely.
    policy = NamePolicy("apple.com")
    assert policy.match(ids("xn--pple-43d.com")) is None
    homograph = NamePolicy("аpple.com")
    assert homograph.expected == "xn--pple-43d.com"
    assert homograph.match(ids("apple.com")) is None
    assert homograph.match(ids("xn--pple-43d.com")) is not None


def test_unicode_expected_name_matches_its_a_label_in_the_certificate() -> None:
    assert NamePolicy("bücher.example").match(ids("xn--bcher-kva.example")) is not None
    # A certificate can only carry A-labels: a raw U-label is never usable.
    assert NamePolicy("bücher.example").match(ids("bücher.example")) is None


# -- wildcards (RFC 9525 §6.3) ------------------------------------------------------------

WILD = NamePolicy("host.example.com", wildcards=True)


def test_wildcards_are_off_by_default() -> None:
    assert NamePolicy("host.example.com").match(ids("*.example.com")) is None


def test_opted_in_wildcard_matches_one_left_most_label() -> None:
    match = WILD.match(ids("*.example.com"))
    assert match is not None
    assert match.identity == "*.example.com"
    assert match.source is IdentitySource.SAN_DNS


@pytest.mark.parametrize(
    ("expected", "presented"),
    [
        ("a.b.example.com", "*.example.com"),  # matches exactly one label, not two
        ("example.com", "*.example.com"),  # not the bare domain
        ("host.example.com", "f*.example.com"),  # partial-label wildcard
        ("host.example.com", "*o*.example.com"),
        ("host.example.com", "host.*.com"),  # not in a middle label
        ("host.example.com", "host.example.*"),
        ("host.example.com", "*.*.com"),
        ("example.com", "*.com"),  # public-suffix position
        ("com", "*"),
        ("xn--bcher-kva.example.com", "*.example.com"),  # never stands for an A-label
    ],
)
def test_wildcard_rules(expected: str, presented: str) -> None:
    assert NamePolicy(expected, wildcards=True).match(ids(presented)) is None


def test_wildcard_is_never_honoured_in_a_uri_or_cn() -> None:
    assert WILD.match(ids(uris=("sip:*.example.com",))) is None
    assert WILD.match(ids(cns=("*.example.com",))) is None


# -- SAN URI sip:/sips: (RFC 5922 §7.1) -----------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "sip:callservice.example.com",
        "sips:callservice.example.com",
        "SIP:CallService.Example.com",
        "sip:callservice.example.com:5061",
        "sip:callservice.example.com;transport=tls",
        "sips:callservice.example.com?subject=x",
    ],
)
def test_sip_uri_host_matches(uri: str) -> None:
    match = NamePolicy("callservice.example.com").match(ids(uris=(uri,)))
    assert match is not None
    assert match.source is IdentitySource.SAN_URI
    assert match.identity == "callservice.example.com"


@pytest.mark.parametrize(
    "uri",
    [
        "sip:alice@callservice.example.com",  # a user, not the domain
        "https://callservice.example.com/",
        "tel:+15551234",
        "sip:",
        "sip:callservice.example.com.evil.com",
        "callservice.example.com",
    ],
)
def test_other_uris_do_not_match(uri: str) -> None:
    assert NamePolicy("callservice.example.com").match(ids(uris=(uri,))) is None


def test_sip_uri_host_parser() -> None:
    assert sip_uri_host("sip:[2001:db8::1]:5061") == "[2001:db8::1]"
    assert sip_uri_host("sip:[2001:db8::1") is None
    assert sip_uri_host("mailto:a@b") is None


# -- the subject CN -------------------------------------------------------------------------


def test_cn_decides_only_when_there_is_no_dns_or_uri_san() -> None:
    match = NamePolicy("callservice.example.com").match(ids(cns=("callservice.example.com",)))
    assert match is not None
    assert match.source is IdentitySource.CN


def test_cn_is_ignored_when_a_dns_san_exists() -> None:
    presented = ids("other.example.com", cns=("callservice.example.com",))
    assert NamePolicy("callservice.example.com").match(presented) is None


def test_cn_is_ignored_when_a_uri_san_exists() -> None:
    presented = ids(uris=("sip:other.example.com",), cns=("callservice.example.com",))
    assert NamePolicy("callservice.example.com").match(presented) is None


def test_cn_never_turns_the_cn_off() -> None:
    presented = ids(cns=("callservice.example.com",))
    assert NamePolicy("callservice.example.com", cn=CnRule.NEVER).match(presented) is None


def test_two_cns_are_ambiguous_and_never_match() -> None:
    presented = ids(cns=("callservice.example.com", "evil.example.com"))
    assert NamePolicy("callservice.example.com").match(presented) is None


# -- IP addresses (RFC 9525 §6.2) -------------------------------------------------------------


def test_ip_matches_only_ip_sans() -> None:
    policy = NamePolicy("127.0.0.1")
    assert policy.is_ip
    good = PresentedIdentities(ips=(ipaddress.ip_address("127.0.0.1"),))
    match = policy.match(good)
    assert match is not None
    assert match.source is IdentitySource.SAN_IP
    assert policy.match(PresentedIdentities(dns=("127.0.0.1",))) is None
    assert policy.match(PresentedIdentities(common_names=("127.0.0.1",))) is None
    assert policy.match(PresentedIdentities(ips=(ipaddress.ip_address("127.0.0.2"),))) is None


def test_normalise_presented_keeps_only_wildcard_prefix() -> None:
    assert normalise_presented("*.Example.COM.") == "*.example.com"
    assert normalise_presented("a.*.example.com") is None


# -- property: no label may differ ------------------------------------------------------------

_LDH = "abcdefghijklmnopqrstuvwxyz0123456789"
_label = st.builds(
    lambda head, mid, tail: head + mid + tail,
    st.sampled_from(_LDH),
    st.text(alphabet=_LDH + "-", max_size=6),
    st.sampled_from(_LDH),
)
_names = st.lists(_label, min_size=2, max_size=5).map(".".join)


@settings(max_examples=100, deadline=None)
@given(expected=_names, presented=st.lists(_names, min_size=1, max_size=4), wild=st.booleans())
def test_a_name_differing_in_any_label_from_every_identity_never_matches(
    expected: str, presented: list[str], wild: bool
) -> None:
    policy = NamePolicy(expected, wildcards=wild)
    exp_labels = expected.split(".")

    def differs(candidate: str) -> bool:
        labels = candidate.split(".")
        return len(labels) != len(exp_labels) or any(
            a != b for a, b in zip(labels, exp_labels, strict=True)
        )

    # Exclude the one sanctioned difference: a wildcard left-most label when opted in.
    candidates = [p for p in presented if differs(p)]
    assert policy.match(ids(*candidates, uris=tuple(f"sip:{c}" for c in candidates))) is None
    if wild:
        wildcarded = ["*." + p.split(".", 1)[1] for p in candidates if differs_tail(p, expected)]
        assert policy.match(ids(*wildcarded)) is None


def differs_tail(candidate: str, expected: str) -> bool:
    """True when everything after the first label differs somewhere from ``expected``'s."""
    c = candidate.split(".")[1:]
    e = expected.split(".")[1:]
    return c != e


@settings(max_examples=100, deadline=None)
@given(expected=_names, position=st.integers(0, 30), char=st.sampled_from("\x00 @*_/\\"))
def test_a_forbidden_character_anywhere_never_matches(
    expected: str, position: int, char: str
) -> None:
    index = min(position, len(expected))
    hostile = expected[:index] + char + expected[index:]
    assert NamePolicy(expected, wildcards=True).match(ids(hostile)) is None
