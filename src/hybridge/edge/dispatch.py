"""The edge's admitted connections and the messages between them: the hot path.

``Dispatcher.data`` takes what one connection read, frames every complete message in it
(``SipStream.next_frame``, which scans each header section as it frames it:
``core.sip.shapes``), asks the relay what to do with each — ``Relay.on_frame`` for a plain
message, the full codec through ``on_request``/``on_response`` when the fast path declines
— and carries it out. Forwards are queued per target connection and written once per loop
iteration (``_flush``), so pipelined requests from many connections cost one TLS record and
one ``send()`` per target.

It also keeps the table of admitted connections (by id, and by side for forwarding), their
deadlines (header and idle timeouts, ``Connection.arm``) and the closing of one with its
reason: one log line and one count each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from hybridge.core.sip import (
    CLOSED,
    NEED_DATA,
    PONG,
    Frame,
    Ping,
    Request,
    SipError,
    parse_frame,
    serialize,
)
from hybridge.edge.connection import Connection
from hybridge.edge.metrics import EdgeMetrics
from hybridge.edge.relay import Action, Answer, Drop, Forward, Relay, SendTo, Side
from hybridge.edge.settings import EdgeSettings

log = logging.getLogger("hybridge.edge")

#: What the dispatcher calls for a request with no connection up on its target side.
NoRoute = Callable[[Connection, Forward, Frame], None]


class Dispatcher:
    """Admitted connections, what they read, and what is relayed between them."""

    def __init__(
        self,
        relay: Relay,
        settings: EdgeSettings,
        metrics: EdgeMetrics,
        loop: asyncio.AbstractEventLoop,
        no_route: NoRoute,
    ) -> None:
        self.relay = relay
        self.settings = settings
        self.metrics = metrics
        self._loop = loop
        self._no_route = no_route
        self.connections: dict[int, Connection] = {}
        self.by_side: dict[Side, list[Connection]] = {Side.CLOUD: [], Side.TRAVERSAL: []}
        self._dirty: list[Connection] = []
        self._flush_scheduled = False
        self._forwarded = {side: metrics.messages.labels(side.value, "forwarded") for side in Side}
        # the deadlines a read sets (``arm``), by side: traversal connections stay up idle
        self._header_timeout = settings.header_timeout
        self._idle_timeout = {Side.CLOUD: settings.idle_timeout, Side.TRAVERSAL: None}
        self._counters: dict[tuple[Side, str], Any] = {}

    # -- the table -------------------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        """Start relaying for ``conn``, just admitted (its ``conn_id`` set)."""
        self.connections[conn.conn_id] = conn
        self.by_side[conn.side].append(conn)
        self.metrics.open.labels(conn.side.value).inc()
        self.arm(conn, self._loop.time())

    def remove(self, conn: Connection) -> None:
        """Forget ``conn`` (it is gone); nothing when it was never added."""
        if conn.admitted and self.connections.pop(conn.conn_id, None) is not None:
            self.by_side[conn.side].remove(conn)
            self.metrics.open.labels(conn.side.value).dec()

    def is_open(self, conn: Connection) -> bool:
        """True while ``conn`` is admitted and open."""
        return self.connections.get(conn.conn_id) is conn

    def close(self, conn: Connection, reason: str, line: str) -> None:
        """Close ``conn`` now: one warning line saying why, one count under ``reason``."""
        assert conn.zone is not None
        # counted before the line is written: whoever reads the line finds it counted
        self.metrics.closed.labels(conn.side.value, reason).inc()
        log.warning(
            "%s connection %d (%s, zone %s) closed: %s [reason %s]",
            conn.side.value,
            conn.conn_id,
            conn.label,
            conn.zone.name,
            line,
            reason,
        )
        conn.close()

    # -- deadlines -------------------------------------------------------------------------

    def arm(self, conn: Connection, now: float) -> None:
        """Set ``conn``'s deadline after a read at loop time ``now`` (``Connection.arm``)."""
        conn.arm(
            now, header_timeout=self._header_timeout, idle_timeout=self._idle_timeout[conn.side]
        )

    def expired(self, conn: Connection) -> None:
        """``conn``'s deadline has passed: close it, saying which one."""
        if conn.conn_id not in self.connections:
            return
        s = self.settings
        if conn.stream.buffered:
            self.close(
                conn,
                "header_timeout",
                f"message incomplete after {s.header_timeout:g}s "
                f"({conn.stream.buffered} bytes received)",
            )
        else:
            self.close(conn, "idle_timeout", f"idle for {s.idle_timeout:g}s")

    # -- one admitted connection's reads: the hot path ---------------------------------------

    def data(self, conn: Connection, data: bytes) -> None:
        """Relay every complete message in ``data`` (``b""``: the peer closed)."""
        conn_id = conn.conn_id
        if self.connections.get(conn_id) is not conn:
            return
        stream = conn.stream
        next_frame = stream.next_frame
        on_frame = self.relay.on_frame
        side = conn.side
        by_side = self.by_side
        connections = self.connections
        dirty = self._dirty
        forwarded = 0
        progressed = False
        try:
            stream.receive_data(data)
            while True:
                event = next_frame()
                if type(event) is Frame:
                    progressed = True
                    action = on_frame(event, side, conn_id)
                    if action is None:
                        action = self._full(conn, event)
                    if type(action) is Forward:
                        targets = by_side[action.to]
                        if targets:
                            target = targets[-1]
                            if not target.outbox:
                                dirty.append(target)
                            target.outbox.append(action.data)
                            forwarded += 1
                        else:
                            self._no_route(conn, action, event)
                    elif type(action) is SendTo:
                        back = connections.get(action.conn_id)
                        if back is None:
                            self.count(side, "dropped")
                            log.info("response for closed connection %d dropped", action.conn_id)
                        else:
                            if not back.outbox:
                                dirty.append(back)
                            back.outbox.append(action.data)
                            forwarded += 1
                    elif type(action) is Answer:
                        self.count(side, f"answered_{action.status}")
                        self.queue(conn, action.data)
                    else:
                        assert isinstance(action, Drop)
                        self.count(side, "dropped")
                        log.info(
                            "%s connection %d: dropped: %s", side.value, conn_id, action.reason
                        )
                elif event is NEED_DATA:
                    break
                elif type(event) is Ping:
                    progressed = True
                    self.queue(conn, PONG)
                elif event is CLOSED:
                    # debug: at a thousand connections a second this line would be most of
                    # the log; the admission and every refusal are logged at info and above
                    log.debug("%s connection %d closed by peer", side.value, conn_id)
                    conn.close()
                    return
                else:
                    progressed = True  # a Pong: nothing to do
        except SipError as exc:
            reason = "message_too_large" if exc.status_hint in (413, 513) else "bad_message"
            self.close(conn, reason, f"{exc} (SIP {exc.status_hint})")
            return
        finally:
            if forwarded:
                self._forwarded[side].inc(forwarded)
            if dirty and not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
        if progressed:
            conn.message_started = None
        conn.arm(
            self._loop.time(),
            header_timeout=self._header_timeout,
            idle_timeout=self._idle_timeout[side],
        )

    def _full(self, conn: Connection, frame: Frame) -> Action:
        # The reference path: the whole message parsed and checked by the full codec.
        message = parse_frame(frame)
        if isinstance(message, Request):
            return self.relay.on_request(message, side=conn.side, conn_id=conn.conn_id)
        return self.relay.on_response(message)

    def count(self, side: Side, action: str) -> None:
        """Count one message received on ``side`` under ``action`` (not the forwards)."""
        child = self._counters.get((side, action))
        if child is None:
            child = self._counters[(side, action)] = self.metrics.messages.labels(
                side.value, action
            )
        child.inc()

    # -- writing -----------------------------------------------------------------------------

    def queue(self, target: Connection, data: bytes) -> None:
        """Queue ``data`` on ``target``, written with this loop iteration's other writes."""
        if target.queue(data):
            self._dirty.append(target)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)

    def relay_to(self, target: Connection, data: bytes, source: Side) -> None:
        """Queue relayed ``data`` (received on side ``source``) on ``target``."""
        self.queue(target, data)
        self._forwarded[source].inc()

    def _flush(self) -> None:
        # Once per loop iteration: everything relayed to one connection in this iteration,
        # from any number of connections, goes out as one TLS write.
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for target in dirty:
            if not target.flush() and target.conn_id in self.connections:
                self.close(
                    target,
                    "write_backlog",
                    "the peer does not read what is relayed to it (over 1 MiB queued); closed",
                )

    def unroutable(self, conn: Connection, frame: Frame) -> None:
        """Answer a request that cannot be relayed 503 (not an ACK)."""
        self.count(conn.side, "no_route")
        try:
            message = parse_frame(frame)
        except SipError:
            return
        if isinstance(message, Request) and message.method != "ACK":
            # RFC 3261 §16.11: a stateless proxy may answer; nobody to relay to.
            answer = message.response(503, "Service Unavailable", to_tag="hb-edge")
            if conn.conn_id in self.connections:
                self.queue(conn, serialize(answer))
