"""Messages per second: parse a typical INVITE with ``hybridge.core.sip``, and with sippy.

sippy (PyPI ``sippy``, a B2BUA's SIP stack) was the fastest and most correct of the PyPI
parsers evaluated for ``core.sip`` (see its module docstring). It is never a dependency of
Hybridge: when it is not importable here, this script installs it into a throwaway venv
under the system temp directory and measures it there in a subprocess. When that fails
(offline), only our figures are printed, and the script says so.

Both sides do a proxy's work on the message: frame/parse it and read Via, From, To,
Call-ID, CSeq, Max-Forwards, Contact and Route. Ours also runs the relay step (prepend a
Via, lower Max-Forwards, serialise), printed separately. Then the edge's relay on the same
INVITE without its Route (a Route to pop sends a message down the full path): the full path
(``next_event`` + ``Relay.on_request``) against the lazy fast path (``next_frame`` +
``Relay.on_frame``, bytes spliced, ``core.sip.lazy``), which produce the same bytes.

Rates are per CPU-second of the measuring process (``time.process_time``), so other load on
the machine does not count against either side; rounds alternate ours and the peer.

    .venv/bin/python bench/sip_parse.py [--seconds 1.0] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from pathlib import Path

from hybridge.core.sip import NEED_DATA, Frame, Request, SipStream, serialize
from hybridge.edge.relay import Forward, Relay, Side

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)
INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tls>\r\n"
    b"Route: <sip:edge.example.com:5062;transport=tls;lr>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)
INVITE_NO_ROUTE = INVITE.replace(b"Route: <sip:edge.example.com:5062;transport=tls;lr>\r\n", b"")
RELAY = Relay(host="edge.example.com", ports={Side.CLOUD: 5062, Side.TRAVERSAL: 7001})

# Run by the peer's interpreter: prints messages/s as JSON.
PEER_SCRIPT = """
import json, sys, time
from sippy.SipRequest import SipRequest
data = sys.stdin.buffer.read()
seconds = float(sys.argv[1])
def work():
    m = SipRequest(buf=data.decode("utf-8"))
    for name in ("via", "from", "to", "call-id", "cseq", "max-forwards", "contact", "route"):
        for header in m.getHFs(name):
            header.getBody()
    return m
work()
n, start = 0, time.process_time()
while (elapsed := time.process_time() - start) < seconds:
    for _ in range(100):
        work()
    n += 100
print(json.dumps({"rate": n / elapsed}))
"""


def rate(work: Callable[[], object], seconds: float) -> float:
    """Calls of ``work()`` per second over ``seconds``."""
    count, start = 0, time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        for _ in range(100):
            work()
        count += 100
    return count / elapsed


def ours_parse() -> Request:
    stream = SipStream()
    stream.receive_data(INVITE)
    message = stream.next_event()
    assert isinstance(message, Request)
    assert stream.next_event() is NEED_DATA
    # the views a proxy reads are already parsed; touch them as the peer must
    message.via[0].branch, message.from_address.tag, message.to_address.tag
    message.call_id, message.cseq.number, message.max_forwards, message.route  # noqa: B018
    return message


def ours_relay() -> bytes:
    message = ours_parse()
    forwarded = message.with_via("SIP/2.0/TLS edge.example.com:5062;branch=z9hG4bKrelay")
    return serialize(forwarded.with_max_forwards((message.max_forwards or 70) - 1))


def edge_full_relay() -> bytes:
    stream = SipStream()
    stream.receive_data(INVITE_NO_ROUTE)
    message = stream.next_event()
    assert isinstance(message, Request)
    action = RELAY.on_request(message, side=Side.CLOUD, conn_id=1)
    assert isinstance(action, Forward) and stream.next_event() is NEED_DATA
    return action.data


def edge_fast_relay() -> bytes:
    stream = SipStream()
    stream.receive_data(INVITE_NO_ROUTE)
    frame = stream.next_frame()
    assert isinstance(frame, Frame)
    action = RELAY.on_frame(frame, side=Side.CLOUD, conn_id=1)
    assert isinstance(action, Forward) and stream.next_frame() is NEED_DATA
    return action.data


def peer_python() -> tuple[str | None, str]:
    """A Python that can import sippy, or None and the reason."""
    if importlib.util.find_spec("sippy") is not None:
        return sys.executable, "sippy from this environment"
    target = Path(tempfile.gettempdir()) / "hybridge-bench-sippy"
    python = target / "bin" / "python"
    if not python.exists():
        venv.create(target, with_pip=True)
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "sippy"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0:
        return None, f"pip install sippy failed: {installed.stderr.strip()[-200:]}"
    return str(python), f"sippy installed in {target}"


def peer_rate(python: str, seconds: float) -> float:
    """sippy's messages per second, measured in a subprocess of ``python``."""
    result = subprocess.run(
        [python, "-c", PEER_SCRIPT, str(seconds)],
        input=INVITE,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return float(json.loads(result.stdout)["rate"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; best counts")
    args = parser.parse_args()

    print(f"message: typical INVITE, {len(INVITE)} bytes, 12 headers, SDP body")
    python, how = peer_python()
    if python is None:
        print(f"peer: not measured ({how}); only our figures are printed")
    ours = relay = peer = full = fast = 0.0
    assert edge_fast_relay() == edge_full_relay()
    # Rounds alternate ours and the peer so that a busy machine slows both alike.
    for _ in range(args.rounds):
        ours = max(ours, rate(ours_parse, args.seconds))
        relay = max(relay, rate(ours_relay, args.seconds))
        full = max(full, rate(edge_full_relay, args.seconds))
        fast = max(fast, rate(edge_fast_relay, args.seconds))
        if python is not None:
            try:
                peer = max(peer, peer_rate(python, args.seconds))
            except subprocess.CalledProcessError as error:
                print(f"peer: sippy failed ({error.stderr.decode()[-300:]})")
                python = None
    print(f"hybridge.core.sip parse:            {ours:12,.0f} messages/CPU-s")
    print(f"hybridge.core.sip parse+relay edit: {relay:12,.0f} messages/CPU-s")
    if peer:
        print(f"sippy parse ({how}): {peer:12,.0f} messages/CPU-s")
        print(f"ratio ours/sippy (parse): {ours / peer:.2f}x")
    print("the edge's relay, INVITE without Route, frame + decide + forwarded bytes:")
    print(f"  full path (next_event + on_request): {full:12,.0f} messages/CPU-s")
    print(f"  fast path (next_frame + on_frame):   {fast:12,.0f} messages/CPU-s")
    print(f"  fast / full = {fast / full:.2f}x")


if __name__ == "__main__":
    main()
