"""The call service's SIP answers and a test call's requests, without I/O."""

from __future__ import annotations

import itertools

import pytest

from hybridge.cloud.callservice_uas import (
    CallServiceUas,
    TestCallMessages,
    sdp_body,
    with_body,
)
from hybridge.core.sip import HeaderField, Request, SipStream, serialize


def _request(method: str, *, call_id: str = "c1", cseq: int = 1, to_tag: str | None = None,
             extra: tuple[HeaderField, ...] = ()) -> Request:  # fmt: skip
    to = "<sip:test@callservice.example.test>" + (f";tag={to_tag}" if to_tag else "")
    headers = (
        HeaderField("Via", "SIP/2.0/TLS edge.example.test:5062;branch=z9hG4bKx1"),
        HeaderField("From", "<sip:alice@premises.test>;tag=a1"),
        HeaderField("To", to),
        HeaderField("Call-ID", call_id),
        HeaderField("CSeq", f"{cseq} {method}"),
        *extra,
        HeaderField("Content-Length", "0"),
    )
    return Request(method, "sip:test@callservice.example.test", headers)


def _uas() -> CallServiceUas:
    tags = (f"t{n}" for n in itertools.count(1))
    return CallServiceUas(host="callservice.example.test", new_tag=lambda: next(tags))


def test_invite_gets_100_180_and_200_with_sdp_and_the_record_route() -> None:
    uas = _uas()
    rr = (HeaderField("Record-Route", "<sip:edge.example.test:5062;transport=tls;lr>"),)
    trying, ringing, ok = uas.on_request(_request("INVITE", extra=rr))
    assert (trying.status_code, ringing.status_code, ok.status_code) == (100, 180, 200)
    # RFC 3261 §8.2.6.2: no To tag on 100 Trying; the same tag on 180 and 200.
    assert trying.to_address.tag is None
    assert ringing.to_address.tag == ok.to_address.tag == "t1"
    assert ok.get_all("Record-Route") == ("<sip:edge.example.test:5062;transport=tls;lr>",)
    assert ok.get("Content-Type") == "application/sdp"
    assert ok.body.startswith(b"v=0\r\n") and b"m=audio 49170 RTP/AVP 0 8\r\n" in ok.body
    assert ok.get("Contact") == "<sip:callservice@callservice.example.test;transport=tls>"
    # the wire form frames again to the same message
    stream = SipStream()
    stream.receive_data(serialize(ok))
    assert stream.next_event() == ok
    assert uas.active_calls == 1


def test_retransmitted_invite_gets_the_same_200() -> None:
    uas = _uas()
    first = uas.on_request(_request("INVITE"))[-1]
    assert uas.on_request(_request("INVITE")) == (first,)


def test_bye_of_a_known_call_gets_200_and_an_unknown_one_481() -> None:
    uas = _uas()
    uas.on_request(_request("INVITE"))
    assert uas.on_request(_request("ACK", to_tag="t1")) == ()
    (done,) = uas.on_request(_request("BYE", cseq=2, to_tag="t1"))
    assert done.status_code == 200 and uas.active_calls == 0
    (again,) = uas.on_request(_request("BYE", cseq=3, to_tag="t1"))
    assert (again.status_code, again.reason) == (481, "Call/Transaction Does Not Exist")


@pytest.mark.parametrize(("method", "status"), [("OPTIONS", 200), ("CANCEL", 200),
                                                ("MESSAGE", 405), ("REGISTER", 405)])  # fmt: skip
def test_other_methods(method: str, status: int) -> None:
    (answer,) = _uas().on_request(_request(method))
    assert answer.status_code == status
    if status in (200, 405) and method != "CANCEL":
        assert answer.get("Allow") == "INVITE, ACK, CANCEL, BYE, OPTIONS"


def test_calls_beyond_the_bound_forget_the_oldest() -> None:
    uas = CallServiceUas(host="h.test", max_calls=2)
    for n in range(3):
        uas.on_request(_request("INVITE", call_id=f"c{n}"))
    assert uas.active_calls == 2
    (answer,) = uas.on_request(_request("BYE", call_id="c0", cseq=2, to_tag="x"))
    assert answer.status_code == 481


def test_test_call_requests_follow_the_dialog() -> None:
    tokens = (f"k{n}" for n in itertools.count(1))
    calls = TestCallMessages(to_uri="sip:alice@premises.test", from_uri="sip:t@cs.test",
                             via_host="cs.test", new_token=lambda: next(tokens))  # fmt: skip
    invite = calls.invite(sdp_body("cs.test", 1))
    assert invite.via[0].branch == "z9hG4bKk3" and invite.get("Content-Type") == "application/sdp"
    uas = _uas()
    rr = invite.with_record_route("<sip:edge-in.test;lr>").with_record_route(
        "<sip:edge-out.test;lr>"
    )
    ok = uas.on_request(rr)[-1]
    dialog = calls.dialog(invite, ok)
    # RFC 3261 §12.1.2: route set = Record-Route reversed; remote target = Contact.
    assert dialog.route_set == ("<sip:edge-in.test;lr>", "<sip:edge-out.test;lr>")
    assert dialog.remote_target == "sip:callservice@callservice.example.test;transport=tls"
    ack = calls.in_dialog(dialog, "ACK", 1)
    bye = calls.in_dialog(dialog, "BYE", 2)
    assert ack.uri == bye.uri == dialog.remote_target
    assert [r.uri for r in bye.route] == ["sip:edge-in.test;lr", "sip:edge-out.test;lr"]
    assert ack.via[0].branch != bye.via[0].branch != invite.via[0].branch
    assert bye.to_address.tag == "t1" and bye.cseq.number == 2


def test_a_200_without_contact_cannot_be_acknowledged() -> None:
    calls = TestCallMessages(to_uri="sip:a@p.test", from_uri="sip:t@cs.test", via_host="cs.test")
    invite = calls.invite(b"")
    ok = invite.response(200, "OK", to_tag="x")
    with pytest.raises(ValueError, match="carries no Contact"):
        calls.dialog(invite, ok)


def test_with_body_sets_content_length() -> None:
    ok = with_body(
        _request("INVITE").response(200, "OK", to_tag="t"), b"v=0\r\n", "application/sdp"
    )
    assert ok.get("Content-Length") == "5" and ok.body == b"v=0\r\n"
