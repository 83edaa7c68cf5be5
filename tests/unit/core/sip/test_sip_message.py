"""Messages as values: header access, compact forms, folding, lists, and the proxy's edits."""

from __future__ import annotations

import pytest
from sip_torture import SDP_150, msg

from hybridge.core.sip import (
    COMPACT_FORMS,
    DuplicateHeaderError,
    HeaderField,
    InvalidHeaderValueError,
    MalformedHeaderError,
    MalformedStartLineError,
    MissingHeaderError,
    Request,
    Response,
    SipStream,
    parse_datagram,
    serialize,
)

INVITE = msg(
    "INVITE sip:bob@biloxi.example.com SIP/2.0",
    "Via: SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK74bf9",
    "Max-Forwards: 70",
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl",
    "To: Bob <sip:bob@biloxi.example.com>",
    "Call-ID: 3848276298220188511@atlanta.example.com",
    "CSeq: 1 INVITE",
    "Route: <sip:edge.example.com;lr>, <sip:core.example.com;lr>",
    "Contact: <sip:alice@client.atlanta.example.com;transport=tls>",
    "Content-Type: application/sdp",
    "Content-Length: 150",
    body=SDP_150,
)

RINGING = msg(
    "SIP/2.0 180 Ringing",
    "v: SIP/2.0/TLS edge.example.com;branch=z9hG4bKedge1, SIP/2.0/TLS client.example.com"
    ";branch=z9hG4bK74bf9;received=192.0.2.1",
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl",
    "To: Bob <sip:bob@biloxi.example.com>;tag=8321234356",
    "Call-ID: 3848276298220188511@atlanta.example.com",
    "CSeq: 1 INVITE",
    "Content-Length: 0",
)


def parse(data: bytes) -> Request | Response:
    stream = SipStream()
    stream.receive_data(data)
    event = stream.next_event()
    assert isinstance(event, Request | Response)
    return event


def request_head(*lines: str) -> list[str]:
    return [
        "OPTIONS sip:edge.example.com SIP/2.0",
        "Via: SIP/2.0/TLS peer.example.com;branch=z9hG4bK1",
        "From: <sip:ping@example.com>;tag=1",
        "To: <sip:edge.example.com>",
        "Call-ID: c1@example.com",
        "CSeq: 7 OPTIONS",
        *lines,
        "Content-Length: 0",
    ]


@pytest.mark.parametrize(("compact", "name"), sorted(COMPACT_FORMS.items()))
def test_compact_form_reads_as_its_long_name(compact: str, name: str) -> None:
    value = {
        "i": "compact@example.com",
        "v": "SIP/2.0/TCP compact.example.com;branch=z9hG4bK9",
        "f": "<sip:f@example.com>;tag=2",
        "t": "<sip:t@example.com>",
        "l": "0",
        "m": "<sip:m@example.com>",
    }.get(compact, "some-value")
    lines = request_head()
    # replace the long form of the same header, if the head has one
    lines = [line for line in lines if not line.lower().startswith(name.lower() + ":")]
    if name == "Content-Length":
        lines.append(f"{compact}: {value}")
    else:
        lines.insert(1, f"{compact}: {value}")
    message = parse(msg(*lines))
    assert message.get(name) == value
    assert message.get(compact) == value
    assert message.get(name.upper()) == value
    assert any(
        h.name == name and h.raw.startswith(compact.encode() + b":") for h in message.headers
    )


def test_compact_via_sets_the_parsed_view() -> None:
    message = parse(RINGING)
    assert [v.host for v in message.via] == ["edge.example.com", "client.example.com"]
    assert message.via[1].param("received") == "192.0.2.1"


def test_folded_header_unfolds_to_single_spaces_and_keeps_its_raw_lines() -> None:
    data = msg(*request_head("Subject: first part", "\tsecond part", "   third"))
    message = parse(data)
    assert message.get("Subject") == "first part second part third"
    subject = next(h for h in message.headers if h.name == "Subject")
    assert subject.raw == b"Subject: first part\r\n\tsecond part\r\n   third"
    assert serialize(message) == data


def test_continuation_line_before_any_header_is_refused() -> None:
    data = b"OPTIONS sip:a@example.com SIP/2.0\r\n folded: x\r\n" + msg(*request_head()[1:])
    with pytest.raises(MalformedHeaderError, match="continuation line"):
        parse(data)


def test_list_header_values_split_outside_quotes_and_brackets() -> None:
    message = parse(
        msg(
            *request_head(
                'Contact: "Doe, John" <sip:a@example.com;x=1,2>;q=0.5, <sip:b@example.com>',
                "Contact: sip:c@example.com",
                "Allow: INVITE, ACK,OPTIONS",
                "Allow: BYE",
            )
        )
    )
    assert message.get_all("Contact") == (
        '"Doe, John" <sip:a@example.com;x=1,2>;q=0.5',
        "<sip:b@example.com>",
        "sip:c@example.com",
    )
    assert message.get_all("allow") == ("INVITE", "ACK", "OPTIONS", "BYE")


@pytest.mark.parametrize(
    "line",
    [
        'WWW-Authenticate: Digest realm="example.com", nonce="abc", qop="auth"',
        'Authorization: Digest username="alice", realm="example.com", response="0ab"',
        "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        "X-Unknown: a, b, c",
    ],
)
def test_headers_that_are_not_lists_are_never_split(line: str) -> None:
    name, _, value = line.partition(": ")
    message = parse(msg(*request_head(line)))
    assert message.get_all(name) == (value,)


def test_route_and_record_route_are_parsed_in_order() -> None:
    message = parse(INVITE)
    assert [r.uri for r in message.route] == ["sip:edge.example.com;lr", "sip:core.example.com;lr"]
    assert message.record_route == ()


@pytest.mark.parametrize(
    ("line", "header"),
    [
        ("Route: sip:edge.example.com;lr", "Route"),  # RFC 3261 §20.34: name-addr only
        ("Record-Route: <sip:a.example.com>,", "Record-Route"),
        ("Via: SIP/2.0/TLS", "Via"),
        ("Via: SIP/3.0/TLS host.example.com", "Via"),
        ("Via: SIP/2.0/TLS host.example.com:99999", "Via"),
        ("Max-Forwards: 256", "Max-Forwards"),
        ("Max-Forwards: +1", "Max-Forwards"),
        ("Contact: <sip:a@example.com", "Contact"),
        ('Contact: "unterminated <sip:a@example.com>', "Contact"),
    ],
)
def test_known_header_with_a_bad_value_is_named(line: str, header: str) -> None:
    with pytest.raises(InvalidHeaderValueError) as caught:
        parse(msg(*request_head(line)))
    assert caught.value.header == header
    assert caught.value.status_hint == 400


def test_call_id_with_a_space_is_refused() -> None:
    lines = [line for line in request_head() if not line.startswith("Call-ID")]
    with pytest.raises(InvalidHeaderValueError, match="Call-ID") as caught:
        parse(msg(*lines, "Call-ID: two words"))
    assert caught.value.header == "Call-ID"


def test_round_trip_parse_serialize_parse() -> None:
    for data in (INVITE, RINGING):
        message = parse(data)
        assert serialize(message) == data
        assert parse(serialize(message)) == message


def test_relay_edits_touch_only_the_lines_they_change() -> None:
    request = parse(INVITE)
    assert isinstance(request, Request)
    assert request.max_forwards == 70
    relayed = (
        request.with_via("SIP/2.0/TLS edge.example.com:5062;branch=z9hG4bKrelay1")
        .with_max_forwards(69)
        .without_top_route()
        .with_record_route("<sip:edge.example.com:5062;transport=tls;lr>")
    )
    wire = serialize(relayed)
    # a new Record-Route goes on top of the message when there is none yet (as Kamailio's)
    assert wire.startswith(
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Record-Route: <sip:edge.example.com:5062;transport=tls;lr>\r\n"
        b"Via: SIP/2.0/TLS edge.example.com:5062;branch=z9hG4bKrelay1\r\n"
        b"Via: SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK74bf9\r\n"
        b"Max-Forwards: 69\r\n"
    )
    assert b"\r\nRoute: <sip:core.example.com;lr>\r\n" in wire
    # untouched lines are the received bytes, unchanged
    assert wire.endswith(
        INVITE[INVITE.index(b"From:") - 2 :].replace(
            b"Route: <sip:edge.example.com;lr>, <sip:core.example.com;lr>",
            b"Route: <sip:core.example.com;lr>",
        )
    )
    # the views follow the edits, and a fresh parse of the wire agrees with them
    again = parse(wire)
    assert again == relayed
    assert [v.host for v in relayed.via] == ["edge.example.com", "client.atlanta.example.com"]
    assert relayed.via[0].branch == "z9hG4bKrelay1"
    assert [r.uri for r in relayed.route] == ["sip:core.example.com;lr"]
    assert relayed.max_forwards == 69
    # the original is unchanged (values are immutable)
    assert request.max_forwards == 70 and len(request.via) == 1


def test_response_relay_removes_the_top_via_from_a_multi_value_line() -> None:
    response = parse(RINGING)
    relayed = response.without_top_via()
    assert [v.host for v in relayed.via] == ["client.example.com"]
    assert parse(serialize(relayed)) == relayed
    with pytest.raises(MissingHeaderError, match="only Via"):
        relayed.without_top_via()


def test_edits_refuse_bad_values() -> None:
    request = parse(INVITE)
    with pytest.raises(InvalidHeaderValueError):
        request.with_via("not a via")
    with pytest.raises(InvalidHeaderValueError, match=r"0\.\.255"):
        request.with_max_forwards(256)
    with pytest.raises(InvalidHeaderValueError, match="name-addr"):
        request.with_record_route("sip:edge.example.com;lr")
    with pytest.raises(MissingHeaderError, match="Route"):
        request.without_top_route().without_top_route().without_top_route()


def test_with_max_forwards_adds_the_header_when_absent() -> None:
    lines = [line for line in request_head() if not line.startswith("Max-Forwards")]
    request = parse(msg(*lines))
    assert request.max_forwards is None
    assert request.with_max_forwards(70).get("Max-Forwards") == "70"


def test_built_request_gets_content_length_when_serialized() -> None:
    headers = tuple(
        HeaderField(name, value)
        for name, value in [
            ("Via", "SIP/2.0/TLS edge.example.com;branch=z9hG4bK77"),
            ("From", "<sip:edge@example.com>;tag=a"),
            ("To", "<sip:peer@example.com>"),
            ("Call-ID", "built@edge"),
            ("CSeq", "1 OPTIONS"),
        ]
    )
    request = Request("OPTIONS", "sip:peer.example.com", headers)
    wire = serialize(request)
    assert wire.endswith(b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    assert parse(wire).call_id == "built@edge"


def test_datagram_without_content_length_gains_one_for_a_stream() -> None:
    datagram = msg(*[line for line in request_head() if not line.startswith("Content-Length")])
    message = parse_datagram(datagram)
    assert serialize(message).endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize(
    ("name", "value", "raw", "error"),
    [
        ("Bad Name", "x", b"", MalformedHeaderError),
        ("X-Ok", "line\r\nInjected: yes", b"", InvalidHeaderValueError),
        ("X-Ok", "x", b"X-Ok: x\r\nInjected: yes", MalformedHeaderError),
        ("X-Ok", "x", b"X-Ok: x\nInjected: yes", MalformedHeaderError),
    ],
)
def test_header_field_refuses_names_and_bytes_that_would_inject_lines(
    name: str, value: str, raw: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        HeaderField(name, value, raw)


def test_header_field_accepts_folded_raw_and_expands_compact_names() -> None:
    field = HeaderField("v", "SIP/2.0/TLS a.example.com", b"v: SIP/2.0/TLS\r\n a.example.com")
    assert field.name == "Via"


def test_request_and_response_constructors_validate_the_start_line() -> None:
    headers = parse(INVITE).headers
    with pytest.raises(MalformedStartLineError, match="token"):
        Request("IN VITE", "sip:a@example.com", headers)
    with pytest.raises(MalformedStartLineError, match="Request-URI"):
        Request("INVITE", "<sip:a@example.com>", headers)
    with pytest.raises(MalformedStartLineError, match=r"100\.\.699"):
        Response(99, "Too Low", headers)
    with pytest.raises(MalformedStartLineError, match="CR or LF"):
        Response(200, "OK\r\nX: y", headers)
    with pytest.raises(InvalidHeaderValueError, match="differs from the body"):
        Request("INVITE", "sip:a@example.com", headers, b"short")


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_each_required_header_is_named_when_missing(missing: str) -> None:
    lines = [line for line in request_head() if not line.startswith(missing + ":")]
    with pytest.raises(MissingHeaderError) as caught:
        parse(msg(*lines))
    assert caught.value.header == missing


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.with_via("SIP/2.0/TLS a.example.com;branch=z9hG4bK1\r\n;x=y"),
        lambda m: m.with_via("SIP/2.0/TLS a.example.com;branch=z9hG4bK1, SIP/2.0/TLS b"),
        lambda m: m.with_record_route("<sip:a.example.com;lr>\r\nX-Injected: yes"),
        lambda m: m.with_record_route("<sip:a.example.com;lr>, <sip:b.example.com;lr>"),
    ],
)
def test_edits_cannot_inject_lines_or_extra_values(edit: object) -> None:
    assert callable(edit)
    with pytest.raises(InvalidHeaderValueError):
        edit(parse(INVITE))


def test_response_to_a_request_copies_the_transaction_headers() -> None:
    request = parse(INVITE)
    assert isinstance(request, Request)
    ringing = request.response(180, "Ringing", to_tag="bob-1")
    assert ringing.via == request.via
    assert (ringing.call_id, ringing.cseq) == (request.call_id, request.cseq)
    assert ringing.from_address == request.from_address
    assert ringing.to_address.tag == "bob-1"
    assert ringing.get("Route") is None and ringing.get("Contact") is None
    wire = serialize(ringing)
    assert wire.startswith(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TLS client.atlanta")
    assert wire.endswith(b"Content-Length: 0\r\n\r\n")
    assert parse(wire) == ringing


def test_response_keeps_an_existing_to_tag_and_gives_none_on_100() -> None:
    request = parse(INVITE)
    assert isinstance(request, Request)
    assert request.response(100, "Trying", to_tag="x").to_address.tag is None
    tagged = request.response(200, "OK", to_tag="first")
    bye_headers = tuple(
        HeaderField("CSeq", "2 BYE") if h.name == "CSeq" else h for h in tagged.headers
    )
    bye = Request("BYE", "sip:bob@biloxi.example.com", bye_headers)
    assert bye.response(200, "OK", to_tag="second").to_address.tag == "first"


def test_response_refuses_a_bad_status_or_a_second_cseq() -> None:
    request = parse(INVITE)
    assert isinstance(request, Request)
    with pytest.raises(MalformedStartLineError, match=r"100\.\.699"):
        request.response(700, "Nope")
    with pytest.raises(DuplicateHeaderError, match="CSeq"):
        request.response(200, "OK", headers=(HeaderField("CSeq", "9 INVITE"),))
