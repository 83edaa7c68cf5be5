"""RFC 4475 torture messages through the stream codec and the datagram parser."""

from __future__ import annotations

import pytest
import sip_torture as torture

from hybridge.core.errors import HybridgeError
from hybridge.core.sip import (
    NEED_DATA,
    CSeqMethodMismatchError,
    DuplicateHeaderError,
    IncompleteMessageError,
    InvalidHeaderValueError,
    MalformedStartLineError,
    MissingHeaderError,
    Request,
    Response,
    SipError,
    SipStream,
    UnsupportedVersionError,
    parse_datagram,
    serialize,
)


def parse_one(data: bytes) -> Request | Response:
    stream = SipStream()
    stream.receive_data(data)
    event = stream.next_event()
    assert isinstance(event, Request | Response)
    assert stream.next_event() is NEED_DATA
    return event


@pytest.mark.parametrize("name", sorted(torture.VALID.keys() - {"dblreq"}))
def test_valid_message_parses_and_reserializes_byte_for_byte(name: str) -> None:
    data = torture.VALID[name]
    message = parse_one(data)
    # every header line is kept as received, so relaying changes nothing
    assert serialize(message) == data
    assert parse_one(serialize(message)) == message


def test_wsinv_reads_folded_compact_and_odd_case_headers() -> None:
    message = parse_one(torture.WSINV)
    assert isinstance(message, Request)
    assert message.method == "INVITE"
    assert message.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert message.max_forwards == 68
    assert message.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (message.cseq.number, message.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in message.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert message.to_address.uri == "sip:vivekg@chair-dnrc.example.com"
    assert message.to_address.tag == "1918181833n"
    assert message.from_address.display_name == '"J Rosenberg \\\\\\""'
    assert message.from_address.tag == "98asjd8"
    assert message.get("Subject") == ""
    assert message.get("newfangledheader") == "newfangled value continued newfangled value"
    assert message.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert message.get_all("UnknownHeaderWithUnusualValue") == (";;,,;;,;",)
    assert [r.uri for r in message.route] == [
        "sip:services.example.com;lr;unknownwith=value;unknown-no-value"
    ]
    contact = message.get_all("m")
    assert contact == (
        '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ; '
        "secondparam ; q = 0.33",
    )
    assert message.content_length == 150 == len(message.body)


def test_intmeth_accepts_every_token_character_and_utf8() -> None:
    message = parse_one(torture.INTMETH)
    assert isinstance(message, Request)
    assert message.method == torture.INTMETH_METHOD == message.cseq.method
    assert message.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert message.from_address.tag == "_token~1'+`*%!-."
    assert message.from_address.param("fromparam''~+*_!.-%") == (
        '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"'
    )
    assert message.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert message.max_forwards == 255


def test_esc02_percent_is_not_an_escape_in_method_and_header_names() -> None:
    message = parse_one(torture.ESC02)
    assert isinstance(message, Request)
    assert message.method == "RE%47IST%45R"
    assert message.get_all("Contact") == (
        "<sip:alias1@host1.example.com>",
        "<sip:alias3@host3.example.com>",
    )
    assert message.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_semiuri_and_transports_lists() -> None:
    semiuri = parse_one(torture.SEMIURI)
    assert semiuri.get_all("Accept") == (
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    )
    transports = parse_one(torture.TRANSPORTS)
    assert [v.transport for v in transports.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_responses_with_unusual_and_empty_reason_phrases() -> None:
    unreason = parse_one(torture.UNREASON)
    assert isinstance(unreason, Response)
    assert (unreason.status_code, unreason.reason) == (200, torture.UNREASON_REASON)
    noreason = parse_one(torture.NOREASON)
    assert isinstance(noreason, Response)
    assert (noreason.status_code, noreason.reason) == (100, "")


def test_longreq_mixed_via_forms_count_as_one_list() -> None:
    message = parse_one(torture.LONGREQ)
    assert [v.host for v in message.via][:3] == [
        "sip33.example.com",
        "sip32.example.com",
        "sip31.example.com",
    ]
    assert len(message.via) == 34


def test_multipart_binary_body_is_framed_by_content_length_only() -> None:
    message = parse_one(torture.MPART01)
    assert message.body == torture.MPART_BODY
    assert b"\r\n\r\n" in message.body


def test_baddate_date_is_one_value_despite_its_comma() -> None:
    message = parse_one(torture.BADDATE)
    assert message.get_all("Date") == ("Fri, 01 Jan 2010 16:00:00 EST",)


def test_zero_max_forwards_and_rfc2543_syntax_are_well_formed() -> None:
    assert parse_one(torture.ZEROMF).max_forwards == 0
    old = parse_one(torture.INV2543)
    assert old.max_forwards is None
    assert old.via[0].branch is None
    assert old.to_address.tag is None


# name -> (exception, header it names or None, status hint)
EXPECTED_FAILURES: dict[str, tuple[type[SipError], str | None, int]] = {
    "badinv01": (InvalidHeaderValueError, "From", 400),
    "ncl": (InvalidHeaderValueError, "Content-Length", 400),
    "scalar02": (InvalidHeaderValueError, "CSeq", 400),
    "scalarlg": (InvalidHeaderValueError, "CSeq", 400),
    "quotbal": (InvalidHeaderValueError, "To", 400),
    "ltgtruri": (MalformedStartLineError, None, 400),
    "lwsruri": (MalformedStartLineError, None, 400),
    "lwsstart": (MalformedStartLineError, None, 400),
    "trws": (MalformedStartLineError, None, 400),
    "escruri": (MalformedStartLineError, None, 400),
    "regbadct": (InvalidHeaderValueError, "Contact", 400),
    "badaspec": (InvalidHeaderValueError, "To", 400),
    "baddn": (InvalidHeaderValueError, "From", 400),
    "badvers": (UnsupportedVersionError, None, 505),
    "mismatch01": (CSeqMethodMismatchError, None, 400),
    "mismatch02": (CSeqMethodMismatchError, None, 400),
    "bigcode": (MalformedStartLineError, None, 400),
    "insuf": (MissingHeaderError, "From", 400),
    "multi01": (DuplicateHeaderError, "CSeq", 400),
    "mcl01": (DuplicateHeaderError, "Content-Length", 400),
}


def test_every_invalid_message_has_an_expectation() -> None:
    assert set(EXPECTED_FAILURES) == set(torture.INVALID)


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_invalid_message_is_refused_with_the_exact_error(name: str) -> None:
    error_type, header, status = EXPECTED_FAILURES[name]
    stream = SipStream()
    stream.receive_data(torture.INVALID[name])
    with pytest.raises(error_type) as caught:
        stream.next_event()
    assert type(caught.value) is error_type
    assert isinstance(caught.value, HybridgeError)
    assert caught.value.status_hint == status
    assert getattr(caught.value, "header", None) == header


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_invalid_message_in_a_datagram_fails_the_same_way(name: str) -> None:
    error_type, header, _ = EXPECTED_FAILURES[name]
    with pytest.raises(error_type) as caught:
        parse_datagram(torture.INVALID[name])
    assert getattr(caught.value, "header", None) == header


def test_scalar02_message_quotes_the_offending_value() -> None:
    with pytest.raises(InvalidHeaderValueError, match="36893488147419103232"):
        parse_datagram(torture.INVALID["scalar02"])


def test_dblreq_datagram_discards_the_octets_after_content_length() -> None:
    message = parse_datagram(torture.DBLREQ)
    assert isinstance(message, Request)
    assert message.method == "REGISTER"
    assert message.body == b""


def test_dblreq_on_a_stream_is_two_messages_the_second_awaiting_its_body() -> None:
    stream = SipStream()
    stream.receive_data(torture.DBLREQ)
    first = stream.next_event()
    assert isinstance(first, Request) and first.method == "REGISTER"
    # the INVITE announces 150 body bytes and carries 152: two are left for the next event
    second = stream.next_event()
    assert isinstance(second, Request) and second.method == "INVITE"
    assert stream.buffered == 2


def test_clerr_in_a_datagram_is_incomplete() -> None:
    with pytest.raises(IncompleteMessageError, match="9999") as caught:
        parse_datagram(torture.CLERR)
    assert caught.value.status_hint == 400


def test_clerr_on_a_stream_waits_then_fails_at_end_of_stream() -> None:
    stream = SipStream()
    stream.receive_data(torture.CLERR)
    assert stream.next_event() is NEED_DATA
    stream.receive_data(b"")
    with pytest.raises(IncompleteMessageError, match="inside a body"):
        stream.next_event()
