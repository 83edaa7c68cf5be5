"""Keyword rules and the join-details block (hybridge.core.meetings)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridge.core.meetings import (
    BEGIN_MARKER,
    END_MARKER,
    MAX_BODY_CHARS,
    MAX_TEMPLATE_CHARS,
    BodyTooLargeError,
    JoinDetails,
    JoinDetailsError,
    JoinTemplate,
    MeetingError,
    MeetingKeyword,
    TemplateError,
    apply_join_details,
    find_keyword,
    has_join_details,
    remove_join_details,
)

DETAILS = JoinDetails(
    "https://meet.example.com/j/123",
    JoinTemplate(header="Contoso meeting", footer="Need help? Call the desk."),
    sip_address="123@meet.example.com",
    meeting_number="2601 123 456",
)


# -- keywords -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        ("Weekly sync @webex", "", MeetingKeyword("webex", None, "subject")),
        ("Weekly sync", "Agenda\n@meet", MeetingKeyword("meet", None, "body")),
        ("@webex:space review", "", MeetingKeyword("webex", "space", "subject")),
        ("1:1 @meet:myroom", "", MeetingKeyword("meet", "myroom", "subject")),
        ("x", "please use @webex:onetime.", MeetingKeyword("webex", "onetime", "body")),
        ("@WebEx:MyRoom", "", MeetingKeyword("webex", "myroom", "subject")),
        ("@MEET", "", MeetingKeyword("meet", None, "subject")),
        ("(@webex)", "", MeetingKeyword("webex", None, "subject")),
        ("Sync @webex.", "", MeetingKeyword("webex", None, "subject")),
        # Subject wins over the body, whatever the body says.
        ("Review @meet", "@webex:space", MeetingKeyword("meet", None, "subject")),
        # An unknown modifier does not count, a later valid keyword does.
        ("@webex:other and @meet:space", "", MeetingKeyword("meet", "space", "subject")),
    ],
)
def test_keyword_found(subject: str, body: str, expected: MeetingKeyword) -> None:
    assert find_keyword(subject, body) == expected


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Lunch", "no keyword here"),
        ("mail bob@webex.com", ""),
        ("see x@meet", ""),
        ("@webexteam standup", ""),
        ("@meet.example.com", ""),
        ("@meet-up", ""),
        ("@webex:other", ""),
        ("@webex:", ""),
        ("webex meeting", "meet me"),
        ("https://example.com/@webex", ""),
    ],
)
def test_not_a_keyword(subject: str, body: str) -> None:
    assert find_keyword(subject, body) is None


def test_keyword_in_html_body_is_found_across_markup() -> None:
    body = "<html><body><p>Agenda</p><p><b>@webex:space</b></p></body></html>"
    assert find_keyword("Sync", body, "HTML") == MeetingKeyword("webex", "space", "body")


def test_keyword_in_html_attribute_only_is_not_found() -> None:
    body = '<html><body><a href="mailto:a@webex">mail</a></body></html>'
    assert find_keyword("Sync", body, "HTML") is None


def test_keyword_inside_our_own_block_does_not_count() -> None:
    details = JoinDetails("https://meet.example.com/j/1", JoinTemplate(header="Use @webex"))
    body = apply_join_details("Agenda only", details)
    assert "@webex" in body
    assert find_keyword("Sync", body) is None


def test_keyword_rejects_unknown_service_and_modifier() -> None:
    with pytest.raises(MeetingError, match="service 'zoom' must be one of"):
        MeetingKeyword("zoom", None, "subject")  # type: ignore[arg-type]
    with pytest.raises(MeetingError, match="modifier 'room' must be one of"):
        MeetingKeyword("webex", "room", "subject")  # type: ignore[arg-type]
    assert MeetingKeyword("meet", "onetime", "body").text == "@meet:onetime"


# -- the join-details block -----------------------------------------------------------------


def test_text_body_gets_one_block_and_keeps_the_organizers_text() -> None:
    body = "Agenda:\n1. budget\n"
    out = apply_join_details(body, DETAILS)
    assert out.startswith("Agenda:\n1. budget\n\n" + BEGIN_MARKER)
    assert out.count(BEGIN_MARKER) == 1 and out.count(END_MARKER) == 1
    assert "Join the meeting: https://meet.example.com/j/123" in out
    assert "Meeting number: 2601 123 456" in out
    assert "Contoso meeting" in out and "Call the desk." in out


def test_apply_twice_is_apply_once() -> None:
    once = apply_join_details("Agenda", DETAILS)
    assert apply_join_details(once, DETAILS) == once


def test_apply_replaces_changed_details_instead_of_adding() -> None:
    once = apply_join_details("Agenda", DETAILS)
    other = JoinDetails("https://meet.example.com/j/999")
    twice = apply_join_details(once, other)
    assert twice.count(BEGIN_MARKER) == 1
    assert "j/999" in twice and "j/123" not in twice


def test_removing_the_keyword_removes_the_block() -> None:
    body = "Agenda\n\nnotes"
    assert apply_join_details(apply_join_details(body, DETAILS), None) == body
    assert remove_join_details(apply_join_details(body, DETAILS)) == body


def test_text_after_the_block_written_by_the_organizer_is_kept() -> None:
    with_block = apply_join_details("Agenda", DETAILS)
    edited = with_block + "P.S. bring slides\n"
    out = apply_join_details(edited, None)
    assert out == "Agenda\nP.S. bring slides\n"


def test_empty_body_gets_just_the_block() -> None:
    out = apply_join_details("", DETAILS)
    assert out.startswith(BEGIN_MARKER)
    assert apply_join_details(out, None) == ""


def test_html_body_block_goes_before_body_close_and_is_idempotent() -> None:
    body = "<html><body><p>Agenda &amp; notes</p></body></html>"
    once = apply_join_details(body, DETAILS, "HTML")
    assert once.index(BEGIN_MARKER) < once.index("</body>")
    assert "<p>Agenda &amp; notes</p>" in once
    assert apply_join_details(once, DETAILS, "HTML") == once
    assert apply_join_details(once, None, "HTML") == body


def test_html_block_escapes_template_text() -> None:
    details = JoinDetails("https://meet.example.com/j/1", JoinTemplate(header="<script>x</script>"))
    out = apply_join_details("<p>a</p>", details, "HTML")
    assert "<script>" not in out and "&lt;script&gt;" in out


def test_html_rewritten_by_exchange_still_removes_block() -> None:
    # Exchange re-renders HTML: our <div> becomes paragraphs, comments are dropped; the
    # visible markers survive, so does removal.
    rewritten = (
        "<html><body><p>Agenda</p>"
        f"<div class=x><p>{BEGIN_MARKER}</p><p>Join the meeting: https://m/j</p>"
        f"<p>{END_MARKER}</p></div></body></html>"
    )
    out = remove_join_details(rewritten, "HTML")
    assert BEGIN_MARKER not in out and END_MARKER not in out and "Join the meeting" not in out
    assert "<p>Agenda</p>" in out


def test_lone_marker_is_left_and_a_new_block_is_added() -> None:
    body = f"Agenda\n{BEGIN_MARKER}\nold join text"
    assert not has_join_details(body)
    out = apply_join_details(body, DETAILS)
    assert out.startswith(body)  # nothing we cannot prove is ours is deleted
    assert has_join_details(out)


@settings(max_examples=200, deadline=None)
@given(body=st.text(max_size=300), html=st.booleans())
def test_apply_is_idempotent_and_reversible_for_any_body(body: str, html: bool) -> None:
    body_type = "HTML" if html else "Text"
    body = body.replace("[[", "")  # a body that already holds a marker is the lone-marker case
    once = apply_join_details(body, DETAILS, body_type)
    assert apply_join_details(once, DETAILS, body_type) == once
    assert once.count(BEGIN_MARKER) == 1
    removed = apply_join_details(once, None, body_type)
    assert removed.strip() == body.strip() or removed.rstrip() == body.rstrip()


# -- templates and details are validated ----------------------------------------------------


def test_template_at_the_limit_is_accepted() -> None:
    JoinTemplate(header="h" * MAX_TEMPLATE_CHARS, footer="f" * MAX_TEMPLATE_CHARS)


def test_template_over_the_limit_is_refused() -> None:
    with pytest.raises(TemplateError, match="header has 1025 characters; at most 1024"):
        JoinTemplate(header="h" * 1025)
    with pytest.raises(TemplateError, match="footer has 2000 characters; at most 1024"):
        JoinTemplate(footer="f" * 2000)


def test_template_with_a_marker_or_control_is_refused() -> None:
    with pytest.raises(TemplateError, match="must not contain the marker"):
        JoinTemplate(footer=f"x {END_MARKER}")
    with pytest.raises(TemplateError, match=r"control character '\\x00'"):
        JoinTemplate(header="a\x00b")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://meet.example.com/j/1", "must be an https:// URL"),
        ("https:///j/1", "must be an https:// URL"),
        ("javascript:alert(1)", "must be an https:// URL"),
    ],
)
def test_join_url_must_be_https(url: str, reason: str) -> None:
    with pytest.raises(JoinDetailsError, match=reason):
        JoinDetails(url)


def test_join_details_refuse_spaces_and_markers() -> None:
    with pytest.raises(JoinDetailsError, match="SIP address 'a b' must not contain spaces"):
        JoinDetails("https://m.example.com/j", sip_address="a b")
    with pytest.raises(JoinDetailsError, match="must not contain a marker"):
        JoinDetails(f"https://m.example.com/{BEGIN_MARKER}")


def test_huge_body_is_refused() -> None:
    with pytest.raises(BodyTooLargeError, match="at most 4194304 are searched"):
        find_keyword("x", "a" * (MAX_BODY_CHARS + 1))


@pytest.mark.parametrize("number", ["", "12a", "1  2", "1\n2", "1" * 33])
def test_meeting_number_must_be_digit_groups(number: str) -> None:
    with pytest.raises(JoinDetailsError, match="must be digits in groups"):
        JoinDetails("https://m.example.com/j", meeting_number=number)


def test_a_block_reformatted_by_the_server_counts_as_applied() -> None:
    body = "<html><body><p>Agenda</p></body></html>"
    once = apply_join_details(body, DETAILS, "HTML")
    # The server re-renders our block: other tags, CRLF, different whitespace.
    reformatted = once.replace("<br>\n", "<br />\r\n  ").replace("<div>", '<div class="x">')
    assert apply_join_details(reformatted, DETAILS, "HTML") == reformatted
    # Different details are not "applied": the block is replaced.
    other = JoinDetails("https://meet.example.com/j/other")
    assert "j/other" in apply_join_details(reformatted, other, "HTML")


def test_crlf_normalised_text_block_counts_as_applied() -> None:
    once = apply_join_details("Agenda\r\nline 2", DETAILS)
    normalised = once.replace("\r\n", "\n")
    assert apply_join_details(normalised, DETAILS) == normalised
