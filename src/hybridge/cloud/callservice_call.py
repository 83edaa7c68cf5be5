"""A test call from the call service to an organisation's edge, and its report.

``place_test_call`` dials the edge's cloud listener over mutual TLS (presenting the
``callservice.<domain>`` certificate; the edge's DNS zone checks that name), checks the
edge's own certificate against the cloud's anchors and the organisation's configured edge
name (``callservice_peer.judge_edge``, role server), then runs one call as its caller:
INVITE with an SDP offer → provisional responses → 200 OK → ACK → BYE → 200 OK. Each
message sent or received is a ``CallStep`` with the milliseconds since the dial began.

The result is a ``CallReport`` whether the call succeeded or not: ``ok`` is true only for
a 200 to the INVITE *and* a 200 to the BYE; otherwise ``reason`` says where it stopped
(TLS refused, edge certificate refused, a non-2xx final response such as the edge's 503
when no connector holds its traversal connection, a timeout). A request the edge relays to
us on this connection meanwhile (a call from the premises) is answered by the same
``CallServiceUas`` as the listener's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from hybridge.cloud import callservice_metrics as metrics
from hybridge.cloud.callservice_edges import EdgeAddress, OrgEdge
from hybridge.cloud.callservice_errors import CallServiceSetupError
from hybridge.cloud.callservice_peer import Refusal, handshake_refusal, judge_edge
from hybridge.cloud.callservice_uas import CallServiceUas, TestCallMessages, sdp_body
from hybridge.core.sip import (
    NEED_DATA,
    PONG,
    Message,
    Ping,
    Pong,
    Request,
    Response,
    SipError,
    SipStream,
    serialize,
)
from hybridge.core.tlsverify import PeerRole, anchor_set_for
from hybridge.tls import TlsError, client_context

_READ_SIZE = 65_536


@dataclass(frozen=True)
class CallStep:
    """One message of the call: ``sent`` or ``received``, what it was, when (ms)."""

    direction: str
    summary: str
    at_ms: float

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping."""
        return {"direction": self.direction, "message": self.summary, "at_ms": self.at_ms}


@dataclass(frozen=True)
class CallReport:
    """What a test call did. ``ok``: 200 to the INVITE and 200 to the BYE."""

    organisation: str
    edge: str
    edge_identity: str | None
    to_uri: str
    call_id: str
    ok: bool
    reason: str
    steps: tuple[CallStep, ...] = field(default_factory=tuple)
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "organisation": self.organisation,
            "edge": self.edge,
            "edge_identity": self.edge_identity,
            "to": self.to_uri,
            "call_id": self.call_id,
            "duration_ms": self.duration_ms,
            "steps": [s.to_dict() for s in self.steps],
        }


def _summary(message: Message) -> str:
    if isinstance(message, Request):
        return f"{message.method} {message.uri}"
    return f"{message.status_code} {message.reason} ({message.cseq.method})"


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Call:
    """One connection and the call on it; collects the steps."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        started: float,
        uas: CallServiceUas,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.started = started
        self.stream = SipStream(expect_pongs=True)
        self.steps: list[CallStep] = []
        self.uas = uas
        #: The INVITE's final status code once it arrived (for the metrics).
        self.invite_status: int | None = None

    def step(self, direction: str, summary: str) -> None:
        at = round((time.monotonic() - self.started) * 1000, 1)
        self.steps.append(CallStep(direction, summary, at))

    async def send(self, request: Request) -> None:
        self.writer.write(serialize(request))
        await self.writer.drain()
        self.step("sent", _summary(request))

    async def response(self, method: str, deadline: float) -> Response:
        """The next response to a ``method`` request; answers requests met on the way."""
        while True:
            event = self.stream.next_event()
            if event is NEED_DATA:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Failed(f"no final response to {method} in time")
                try:
                    async with asyncio.timeout(remaining):
                        data = await self.reader.read(_READ_SIZE)
                except TimeoutError:
                    raise _Failed(f"no final response to {method} in time") from None
                except (OSError, ssl.SSLError) as exc:
                    raise _Failed(f"the edge connection was lost: {exc}") from exc
                self.stream.receive_data(data)
                continue
            if isinstance(event, Response) and event.cseq.method == method:
                self.step("received", _summary(event))
                return event
            if isinstance(event, Request):
                self.step("received", _summary(event))
                answers = self.uas.on_request(event)
                metrics.record_answers(event, answers)
                for answer in answers:
                    self.writer.write(serialize(answer))
                    self.step("sent", _summary(answer))
                continue
            if isinstance(event, Ping):
                self.writer.write(PONG)  # RFC 5626 §3.5.1: a keep-alive ping gets its pong
                continue
            if isinstance(event, Response | Pong):
                continue  # a stray response (an old transaction) or a keep-alive pong
            raise _Failed(f"the edge closed the connection while waiting for the {method} answer")


async def place_test_call(
    edge: OrgEdge,
    *,
    to_uri: str,
    anchors: Sequence[x509.Certificate],
    cert_file: Path,
    key_file: Path,
    address: EdgeAddress | None = None,
    from_uri: str | None = None,
    via_host: str = "callservice.invalid",
    invite_timeout: float = 15.0,
    timeout: float = 5.0,
    hold: float = 0.0,
) -> CallReport:
    """Place one test call to ``edge`` (at ``address``, else its configured address).

    ``hold``: seconds between the ACK and the BYE. Returns the report (``ok`` false with a
    reason on any failure of the call itself).

    Raises:
        CallServiceSetupError: no address known, or the certificate/anchors are unusable.
    """
    target = address or edge.address
    if target is None:
        raise CallServiceSetupError(
            f"organisation {edge.org_name!r} has no edge address; give --edge HOST:PORT or "
            "set one with 'hybridge cloud edge set --address'"
        )
    try:
        context = client_context(list(anchors), cert_file=cert_file, key_file=key_file)
    except TlsError as exc:
        raise CallServiceSetupError(f"the call service cannot set up TLS: {exc}") from exc
    messages = TestCallMessages(
        to_uri=to_uri, from_uri=from_uri or f"sip:test@{via_host}", via_host=via_host
    )
    started = time.monotonic()
    steps: list[CallStep] = []
    identity: str | None = None
    call: _Call | None = None

    def report(ok: bool, reason: str, result: str | None = None) -> CallReport:
        # Every exit of the call goes through here exactly once: the metrics count there.
        status = None if call is None else call.invite_status
        if result is None:
            rejected = status is not None and status >= 300
            result = "ok" if ok else "rejected" if rejected else "failed"
        metrics.record_test_call(result, status)
        return CallReport(
            organisation=edge.org_name,
            edge=str(target),
            edge_identity=identity,
            to_uri=to_uri,
            call_id=messages.call_id,
            ok=ok,
            reason=reason,
            steps=tuple(steps),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                target.host,
                target.port,
                ssl=context,
                server_hostname=edge.subject_name,
                ssl_handshake_timeout=timeout,
            ),
            timeout * 2,
        )
    except (ssl.SSLError, OSError, TimeoutError) as exc:
        refusal = handshake_refusal(exc)
        return report(
            False,
            f"TLS to the edge at {target} failed ({refusal.reason}): {refusal.line}",
            "tls_failed",
        )
    try:
        outcome = judge_edge(
            writer.get_extra_info("ssl_object"),
            (edge,),
            anchors=anchor_set_for(tuple(anchors)),
            role=PeerRole.SERVER,
        )
        if isinstance(outcome, Refusal):
            return report(
                False,
                f"edge certificate refused ({outcome.reason}): {outcome.line}",
                "edge_refused",
            )
        identity = outcome.verdict.identity
        call = _Call(reader, writer, started, CallServiceUas(host=via_host))
        steps = call.steps
        try:
            return await _run(call, messages, via_host, invite_timeout, timeout, hold, report)
        except _Failed as failed:
            return report(False, failed.reason)
        except SipError as exc:
            return report(False, f"the edge sent a malformed message: {exc}")
    finally:
        writer.transport.abort()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _run(
    call: _Call,
    messages: TestCallMessages,
    via_host: str,
    invite_timeout: float,
    timeout: float,
    hold: float,
    report: Callable[[bool, str], CallReport],
) -> CallReport:
    invite = messages.invite(sdp_body(via_host, int(time.time())))
    await call.send(invite)
    deadline = time.monotonic() + invite_timeout
    while True:
        answer = await call.response("INVITE", deadline)
        if answer.status_code >= 200:
            call.invite_status = answer.status_code
            break
    if answer.status_code >= 300:
        # RFC 3261 §17.1.1.3: a non-2xx final response is acknowledged on the same branch.
        await call.send(messages.ack_for_failure(invite, answer))
        return report(False, f"INVITE answered {answer.status_code} {answer.reason}".rstrip())
    try:
        dialog = messages.dialog(invite, answer)
    except ValueError as exc:
        return report(False, str(exc))
    await call.send(messages.in_dialog(dialog, "ACK", dialog.invite_cseq))
    if hold > 0:
        await asyncio.sleep(hold)
    await call.send(messages.in_dialog(dialog, "BYE", dialog.invite_cseq + 1))
    done = await call.response("BYE", time.monotonic() + timeout)
    if done.status_code != 200:
        return report(False, f"BYE answered {done.status_code} {done.reason}".rstrip())
    return report(True, "call completed: INVITE answered 200 OK, ACK sent, BYE answered 200 OK")
