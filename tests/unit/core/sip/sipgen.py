"""Hypothesis strategies for SIP messages: the common shapes a relay sees, and the odd ones.

Each header is drawn from plain spellings (which the relay's fast path takes) and from
variants that must send it to the full codec (compact and odd-case names, folding, lists on
one line, quoted display names, trailing whitespace, RFC 2543 branches, bad values), so a
property over these messages covers both paths and the line between them.
"""

from __future__ import annotations

from hypothesis import strategies as st

EDGE_HOST = "edge.example.test"

token = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=8)
hosts = st.sampled_from(
    ["premises.example.test", "192.0.2.7", "[2001:db8::7]", "a-b.example.test", EDGE_HOST]
)
ports = st.sampled_from(["", ":5061", ":5060", ":0", ":70000", ":05061"])
good_ports = st.sampled_from(["", ":5061", ":5060"])


def _name(canonical: str, compact: str | None = None) -> st.SearchStrategy[str]:
    names = [canonical, canonical, canonical.lower(), canonical.upper()]
    if compact:
        names.append(compact)
    return st.sampled_from(names)


@st.composite
def via_value(draw: st.DrawFn, *, odd: bool = True) -> str:
    branch = draw(
        st.one_of(
            token.map(lambda t: "z9hG4bK" + t),
            token,  # RFC 2543: no magic cookie
            st.just(""),
        )
        if odd
        else token.map(lambda t: "z9hG4bK" + t)
    )
    params = f";branch={branch}" if branch else ""
    params += draw(
        st.sampled_from(["", ";rport", ";received=192.0.2.1", ';x="q"'])
        if odd
        else st.sampled_from(["", ";rport", ";received=192.0.2.1"])
    )
    transport = draw(st.sampled_from(["TLS", "TCP", "UDP", "tls"]))
    space = draw(st.sampled_from([" ", " ", "  "]) if odd else st.just(" "))
    return f"SIP/2.0/{transport}{space}{draw(hosts)}{draw(ports if odd else good_ports)}{params}"


@st.composite
def name_addr(draw: st.DrawFn, *, tag: bool | None = None) -> str:
    uri = f"sip:{draw(token)}@{draw(hosts)}"
    form = draw(st.sampled_from(["angle", "angle", "display", "quoted", "spec", "escaped"]))
    if form == "angle":
        value = f"<{uri}>"
    elif form == "display":
        value = f"Alice Smith <{uri}>"
    elif form == "quoted":
        value = f'"Alice, A." <{uri}>'
    elif form == "escaped":
        value = f'"A \\"q\\"" <{uri}>'
    else:
        value = uri
    if tag is None:
        tag = draw(st.booleans())
    if tag:
        value += draw(st.sampled_from([";tag=", ";TAG=", ";tag="])) + draw(token)
    elif draw(st.integers(0, 9)) == 0:
        value += ";tag"  # valueless: no tag
    return value


@st.composite
def request_bytes(draw: st.DrawFn, *, odd: bool = True) -> bytes:
    """A request; with ``odd``, many take an odd or invalid shape, else few do."""
    method = draw(
        st.sampled_from(["OPTIONS", "INVITE", "BYE", "ACK", "SUBSCRIBE", "NOTIFY", "INFO"])
    )
    uri_host = draw(hosts)
    uri = draw(
        st.sampled_from(
            [f"sip:bob@{uri_host}", f"sip:{uri_host}", f"sips:bob@{uri_host};transport=tls"]
        )
    )
    if odd and draw(st.integers(0, 15)) == 0:
        uri += "?subject=x"
    lines: list[tuple[str, str]] = []
    vias = draw(st.lists(via_value(odd=odd), min_size=1, max_size=3))
    if odd and len(vias) > 1 and draw(st.booleans()):
        lines.append((draw(_name("Via", "v")), ", ".join(vias)))
    else:
        lines.extend((draw(_name("Via", "v")), v) for v in vias)
    forwards = draw(
        st.sampled_from(["70", "70", "1", "0", "255", "256", "07", "x", None])
        if odd
        else st.sampled_from(["70", "1", "255", None])
    )
    if forwards is not None:
        lines.append((draw(_name("Max-Forwards")), forwards))
    lines.append((draw(_name("From", "f")), draw(name_addr(tag=True))))
    lines.append((draw(_name("To", "t")), draw(name_addr())))
    lines.append((draw(_name("Call-ID", "i")), draw(token)))
    cseq_method = method if not odd or draw(st.integers(0, 15)) else "BYE"
    top = 2**31 + 5 if odd else 2**31 - 1
    lines.append((draw(_name("CSeq")), f"{draw(st.integers(0, top))} {cseq_method}"))
    extras = draw(
        st.lists(
            st.sampled_from(
                [
                    ("Contact", "<sip:alice@192.0.2.1;transport=tls>"),
                    ("Contact", "*"),
                    ("m", "<sip:a@192.0.2.1>, <sip:b@192.0.2.2>"),
                    ("Record-Route", "<sip:proxy.example.test;lr>"),
                    ("Route", f"<sip:{EDGE_HOST}:5062;transport=tls;lr;hbr=cloud>"),
                    ("Route", "<sip:other.example.test;lr>"),
                    ("Proxy-Require", "foo"),
                    ("User-Agent", "bench/1.0 (x, y)"),
                    ("Subject", "a, b"),
                    ("X-Trailing", "value   "),
                    ("Call-ID", "duplicate"),
                    ("Accept", "application/sdp"),
                ]
                if odd
                else [
                    ("Contact", "<sip:alice@192.0.2.1;transport=tls>"),
                    ("Record-Route", "<sip:proxy.example.test;lr>"),
                    ("User-Agent", "bench/1.0 (x, y)"),
                    ("Accept", "application/sdp"),
                ]
            ),
            max_size=4,
        )
    )
    for extra in extras:
        lines.insert(draw(st.integers(1, len(lines))), extra)
    body = draw(st.sampled_from([b"", b"", b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"]))
    if draw(st.booleans()):
        lines.append((draw(_name("Content-Length", "l")), str(len(body))))
    else:
        lines.insert(draw(st.integers(0, len(lines))), ("Content-Length", str(len(body))))
    text = [f"{method} {uri} SIP/2.0"]
    for name, value in lines:
        colon = draw(st.sampled_from([": ", ": ", ":", " : "]) if odd else st.just(": "))
        text.append(f"{name}{colon}{value}")
    if odd and draw(st.integers(0, 19)) == 0:
        at = draw(st.integers(1, len(text) - 1))
        text[at] = text[at] + "\r\n folded"
    return ("\r\n".join(text) + "\r\n\r\n").encode() + body


@st.composite
def response_to(draw: st.DrawFn, forwarded: bytes) -> bytes:
    """A response to ``forwarded`` (a request the relay sent on), sometimes tampered with."""
    head = forwarded.split(b"\r\n\r\n", 1)[0].decode()
    keep = [
        line
        for line in head.split("\r\n")[1:]
        if line.split(":", 1)[0].strip().lower()
        in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")
    ]
    status = draw(st.sampled_from(["100 Trying", "180 Ringing", "200 OK", "486 Busy Here", "200"]))
    tamper = draw(st.integers(0, 7))
    if tamper == 1:
        # only our Via: a response to a request the edge sent itself
        vias = [line for line in keep if line.split(":", 1)[0].strip().lower() in ("via", "v")]
        keep = vias[:1] + [line for line in keep if line not in vias]
    elif tamper == 2:
        keep[0] = keep[0].replace("hbc=", "hbc=9")  # a forged connection id
    elif tamper == 3:
        keep[0] = keep[0].replace(EDGE_HOST, "elsewhere.example.test")
    elif tamper == 4:
        keep.insert(0, "Via: SIP/2.0/TLS uas.example.test;branch=z9hG4bKu")
    lines = [f"SIP/2.0 {status}", *keep]
    if status.startswith(("180", "200")) and draw(st.booleans()):
        lines.append("Contact: <sip:bob@192.0.2.9>")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
