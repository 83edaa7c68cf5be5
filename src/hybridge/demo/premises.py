"""A tiny premises SIP server for the demo: answers calls over TCP on loopback.

It stands in for the organisation's PBX behind the connector (Kamailio plays that part in
the edge's interop tests): INVITE → 100 Trying, 180 Ringing, 200 OK with an SDP answer;
ACK → nothing; BYE → 200; OPTIONS → 200; anything else → 405. It keeps no media and
no state beyond the calls it answered (for the demo's printout). Built on ``core.sip``'s
stream framing; asyncio in a background thread so the demo launcher stays a plain loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

from hybridge.core.sip import (
    CLOSED,
    NEED_DATA,
    PONG,
    HeaderField,
    Ping,
    Request,
    Response,
    SipError,
    SipStream,
    serialize,
)

_SDP = (
    b"v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=Hybridge demo PBX\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def answers(request: Request, host: str, port: int) -> tuple[Response, ...]:
    """What the demo PBX answers to ``request`` (module docstring)."""
    if request.method == "ACK":
        return ()
    contact = HeaderField("Contact", f"<sip:alice@{host}:{port};transport=tcp>")
    routes = tuple(HeaderField("Record-Route", v) for v in request.get_all("Record-Route"))
    if request.method == "INVITE":
        ok = request.response(200, "OK", to_tag="pbx", headers=(*routes, contact))
        headers = tuple(h for h in ok.headers if h.name != "Content-Length")
        headers += (
            HeaderField("Content-Type", "application/sdp"),
            HeaderField("Content-Length", str(len(_SDP))),
        )
        return (
            request.response(100, "Trying"),
            request.response(180, "Ringing", to_tag="pbx", headers=(*routes, contact)),
            Response(200, "OK", headers, _SDP),
        )
    if request.method in ("BYE", "OPTIONS", "CANCEL"):
        return (request.response(200, "OK", to_tag="pbx"),)
    allow = HeaderField("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")
    return (request.response(405, "Method Not Allowed", to_tag="pbx", headers=(allow,)),)


@dataclass
class PremisesServer:
    """The demo PBX on ``host:port`` (TCP). ``start`` returns once it listens."""

    host: str = "127.0.0.1"
    port: int = 0
    received: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = SipStream()
        try:
            while True:
                data = await reader.read(65536)
                stream.receive_data(data)
                while (event := stream.next_event()) is not NEED_DATA:
                    if event is CLOSED:
                        return
                    if isinstance(event, Ping):
                        writer.write(PONG)
                    elif isinstance(event, Request):
                        self.received.append(event.method)
                        for response in answers(event, self.host, self.port):
                            writer.write(serialize(response))
                await writer.drain()
                if not data:
                    return
        except (SipError, OSError):
            return
        finally:
            writer.close()

    def start(self, timeout: float = 10.0) -> None:
        """Listen in a background thread. Raises ``OSError`` when the port is taken."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._client, self.host, self.port)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except OSError as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            self._server.close()
            with contextlib.suppress(Exception):
                loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="demo-pbx", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise OSError("the demo PBX did not start in time")
        if failure:
            raise failure[0]

    def stop(self) -> None:
        """Stop listening and end the thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
