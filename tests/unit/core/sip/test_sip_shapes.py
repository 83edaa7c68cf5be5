"""``core.sip.shapes``: the compiled-shape scanner, held to ``scan_head`` (itself held to the
full codec in ``test_sip_lazy.py``), and its bounds."""

from __future__ import annotations

import re

import pytest
import sipgen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridge.core.sip import Frame, SipStream
from hybridge.core.sip.lazy import scan_head
from hybridge.core.sip.patterns import PORT, decimal_at_most
from hybridge.core.sip.shapes import HeadScanner, compile_shape, shape_key

# sipgen.py sits next to this file, whose directory pytest puts on sys.path first.
GEN = sipgen
HEADS = st.one_of(GEN.request_bytes(), GEN.request_bytes(odd=False)).map(
    lambda m: m.split(b"\r\n\r\n")[0]
)
PLAIN = (
    b"OPTIONS sip:uas@premises.example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 192.0.2.1:5061;rport;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:bench@example.test>;tag=b1\r\n"
    b"To: Bob <sip:uas@premises.example.test>;tag=t9\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 4"
)
RESPONSE = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS edge.example.test:7001;branch=z9hG4bK-hb1\r\n"
    b"v: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKa\r\nf: <sip:a@x>;tag=1\r\n"
    b"t: <sip:b@y>;tag=2\r\ni: c\r\nCSeq: 1 INVITE\r\nl: 0"
)


def compiling() -> HeadScanner:
    """A scanner that compiles every shape at once and never runs out of credit."""
    return HeadScanner(max_shapes=10_000, compile_after=1, scans_per_compile=1)


def fields(head: bytes, scanner: HeadScanner) -> dict[str, object] | None:
    view = scanner.scan(head)
    return None if view is None else view.fields()


def reference(head: bytes) -> dict[str, object] | None:
    view = scan_head(head)
    return None if view is None else view.fields()


# -- the patterns the regex engine checks instead of int() -----------------------------------


@given(st.text("0123456789", min_size=1, max_size=12), st.sampled_from([255, 65535, 2**31 - 1]))
def test_decimal_at_most_is_the_digit_and_value_check(digits: str, limit: int) -> None:
    expected = len(digits) <= len(str(limit)) and int(digits) <= limit
    assert (re.fullmatch(decimal_at_most(limit), digits.encode()) is not None) == expected


@given(st.text("0123456789", min_size=1, max_size=7))
def test_port_is_1_to_65535_in_at_most_five_digits(digits: str) -> None:
    expected = len(digits) <= 5 and 0 < int(digits) < 65536
    assert (re.fullmatch(PORT, digits.encode()) is not None) == expected


@pytest.mark.parametrize(
    ("digits", "accepted"),
    [(b"05061", True), (b"65535", True), (b"1", True), (b"0", False), (b"00000", False),
     (b"65536", False), (b"065535", False)],
)  # fmt: skip
def test_port_edges(digits: bytes, accepted: bool) -> None:
    assert (re.fullmatch(PORT, digits) is not None) is accepted


# -- equal to scan_head --------------------------------------------------------------------


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HEADS)
def test_a_compiled_shape_gives_the_view_scan_head_gives(head: bytes) -> None:
    scanner = compiling()
    assert fields(head, scanner) == reference(head)
    # again, now through the most recent shape's regex
    assert fields(head, scanner) == reference(head)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(HEADS, min_size=2, max_size=4))
def test_one_scanner_over_many_sections_agrees_with_scan_head(heads: list[bytes]) -> None:
    # sections of one shape with other values, and of other shapes, through one scanner:
    # the most recent shape's regex must never accept a section scan_head refuses
    scanner = compiling()
    for head in heads + heads[::-1]:
        assert fields(head, scanner) == reference(head)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_mutated_section_gets_the_view_scan_head_gives(data: st.DataObject) -> None:
    scanner = compiling()
    assert scanner.scan(PLAIN) is not None  # the shape is compiled and most recent
    head = bytearray(PLAIN)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(head) - 1))
        head[at] = data.draw(st.sampled_from(b' \t\r\n:;,<>"@=x0'))
    assert fields(bytes(head), scanner) == reference(bytes(head))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(head: bytes) -> None:
    scanner = compiling()
    assert fields(head, scanner) == reference(head)


def test_a_response_has_its_view_and_its_twins_have_none() -> None:
    scanner = compiling()
    view = scanner.scan(RESPONSE)
    assert view is not None and view.status == 200 and view.second_via
    assert (view.first_via, view.content_length, view.to_tag) == (1, 0, True)
    assert view.fields() == reference(RESPONSE)
    # the same shape with values the fast path does not take
    for old, new in ((b"200 OK", b"700 OK"), (b":7001", b":70010"), (b"tag=2", b"tag=2,")):
        twin = RESPONSE.replace(old, new)
        assert scanner.scan(twin) is None and scan_head(twin) is None


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"),  # §8.1.1.5: a backreference in the regex
        (b"CSeq: 1 OPTIONS", b"CSeq: 2147483648 OPTIONS"),  # 2**31
        (b"Max-Forwards: 70", b"Max-Forwards: 256"),
        (b"Call-ID: a84b4c76e66710", b"Call-ID: a b"),
        (b"To: Bob <sip", b"To: Bob  <sip"),  # two spaces before '<'
        (b"Max-Forwards: 70", b"Max-Forwards: 7\n0"),  # a bare LF
    ],
)
def test_a_value_the_fast_path_does_not_take_is_refused_by_the_compiled_shape(
    old: bytes, new: bytes
) -> None:
    scanner = compiling()
    assert scanner.scan(PLAIN) is not None
    twin = PLAIN.replace(old, new)
    assert twin != PLAIN
    assert scanner.scan(twin) is None
    assert scan_head(twin) is None


# -- shapes that are never plain -------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Max-Forwards: 70", b"Max-Forwards: 70\r\nRoute: <sip:p.example.test;lr>"),
        (b"Max-Forwards: 70", b"Max-Forwards: 70\r\nProxy-Require: foo"),
        (b"Max-Forwards: 70", b"Max-Forwards: 70\r\nf: <sip:x@y>;tag=2"),  # From twice
        (b"Via: SIP/2.0/TLS 192.0.2.1:5061;rport;branch=z9hG4bK776asdhds\r\n", b""),
        (b"Call-ID: a84b4c76e66710\r\n", b""),
        (b"Max-Forwards: 70", b"Max Forwards: 70"),  # not a token
        (b"Max-Forwards: 70", b"Max-Forwards: 70\r\n continued"),  # folding
    ],
)
def test_a_shape_that_is_never_plain_compiles_to_none(old: bytes, new: bytes) -> None:
    head = PLAIN.replace(old, new)
    assert compile_shape(shape_key(head)) is None
    assert compiling().scan(head) is None and scan_head(head) is None
    # the twin: the plain shape compiles
    assert compile_shape(shape_key(PLAIN)) is not None


def test_the_key_is_the_names_as_written() -> None:
    assert shape_key(PLAIN) == (
        False,
        (b"Via", b"Max-Forwards", b"From", b"To", b"Call-ID", b"CSeq", b"Content-Length"),
    )
    assert shape_key(RESPONSE)[0] is True
    assert shape_key(PLAIN.replace(b"Via:", b"v :"))[1][0] == b"v "


# -- bounds ------------------------------------------------------------------------------------


def shaped(n: int) -> bytes:
    """A plain section of its own shape: an extra header named after ``n``."""
    return PLAIN.replace(b"Content-Length: 4", b"X-H%d: 1\r\nContent-Length: 4" % n)


def test_a_shape_is_compiled_after_it_is_seen_compile_after_times() -> None:
    scanner = HeadScanner(compile_after=3)
    for seen in range(1, 4):
        assert scanner.scan(shaped(seen % 1)) is not None  # the generic scan, then compiled
        assert scanner.compiles == (1 if seen == 3 else 0)
    assert scanner.shapes == 1


def test_a_new_shape_with_every_message_is_never_compiled() -> None:
    scanner = HeadScanner(compile_after=3)
    for n in range(2000):
        view = scanner.scan(shaped(n))
        assert view is not None and view.fields() == reference(shaped(n))
    assert scanner.compiles == 0


def test_compiles_are_bounded_by_the_credit_scans_earn() -> None:
    # each shape seen 3 times in a row: a compile wanted every 3 scans; granted at most the
    # starting credit (max_shapes // 2) plus one per scans_per_compile scans
    scanner = HeadScanner(max_shapes=8, compile_after=3, scans_per_compile=50)
    scans = 0
    for n in range(400):
        for _ in range(3):
            assert scanner.scan(shaped(n)) is not None
            scans += 1
    assert scanner.compiles <= 8 // 2 + scans // 50
    assert scanner.compiles >= scans // 50 - 1  # the twin: credit is earned back
    assert scanner.shapes <= 8


def test_the_oldest_shape_is_forgotten_first() -> None:
    scanner = HeadScanner(max_shapes=2, compile_after=1, scans_per_compile=1)
    for n in range(3):
        scanner.scan(shaped(n))
    assert scanner.shapes == 2
    assert shape_key(shaped(0)) not in scanner._shapes
    assert shape_key(shaped(2)) in scanner._shapes


@pytest.mark.parametrize("bad", [{"max_shapes": 0}, {"compile_after": 0}, {"scans_per_compile": 0}])
def test_bounds_must_be_positive(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must each be at least 1"):
        HeadScanner(**bad)


# -- framing with a scanner ------------------------------------------------------------------


def test_a_stream_with_a_scanner_hands_the_view_on_and_frames_by_it() -> None:
    scanner = compiling()
    stream = SipStream(head_scanner=scanner.scan)
    stream.receive_data(PLAIN + b"\r\n\r\nbody" + PLAIN.replace(b"Call-ID: a8", b"Call-ID: b8"))
    frame = stream.next_frame()
    assert isinstance(frame, Frame) and frame.body == b"body"
    assert frame.view is not None and frame.view.content_length == 4
    # the twin: a section that is not plain is framed by Content-Length all the same
    stream.receive_data(b"\r\n\r\nbody" + PLAIN.replace(b"Max-Forwards: 70", b"Route: <sip:p>"))
    second = stream.next_frame()
    assert isinstance(second, Frame) and second.view is not None
    stream.receive_data(b"\r\n\r\nbody")
    third = stream.next_frame()
    assert isinstance(third, Frame) and third.view is None and third.body == b"body"


def test_a_shape_with_too_many_or_too_long_names_is_never_kept() -> None:
    scanner = HeadScanner(compile_after=1, scans_per_compile=1)
    many = PLAIN.replace(b"Content-Length: 4", b"X-A: 1\r\n" * 70 + b"Content-Length: 4")
    long = PLAIN.replace(b"Content-Length: 4", b"X-" + b"a" * 1100 + b": 1\r\nContent-Length: 4")
    for head in (many, long, many, long):
        view = scanner.scan(head)
        assert view is not None and view.fields() == reference(head)  # line by line
    assert scanner.compiles == 0 and scanner.shapes == 0
    # the twin: a shape of ordinary size is kept
    assert scanner.scan(PLAIN) is not None and scanner.shapes == 1
