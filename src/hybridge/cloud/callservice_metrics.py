"""The call service's Prometheus metrics, on the cloud's existing ``/metrics``.

Process-wide, in prometheus-client's default registry like ``control_metrics`` (the
``/metrics`` route renders that registry), so they are defined once here and the listener,
the test caller and the UAS only increment them.

Labels are bounded sets, never an organisation, an address or a Call-ID: a label per
organisation or peer would grow without bound with the platform (and a refused peer
chooses its own address); per-organisation detail is in the log lines and the portal.

- ``reason`` of a refused connection: the stable codes the edge uses too,
  ``hybridge.tls.refusal.REASONS`` (``name_mismatch``, ``untrusted_issuer``, ``expired``,
  ``no_certificate``, ``handshake_timeout``, ``refused_by_peer``, ...), and
  ``no_edge_configured``. The known ones are pre-declared at 0 so
  a dashboard sees the series before the first refusal.
- ``status`` of a call: the final response's status code as text (``"200"``, ``"503"``),
  or ``"none"`` when a placed call got no final response (TLS failed, timed out).
- ``result`` of a test call: ``ok``, ``tls_failed`` (no TLS session with the edge),
  ``edge_refused`` (the edge's certificate failed its organisation's name rule or the
  anchors), ``rejected`` (the INVITE got a non-2xx final response) or ``failed`` (anything
  else: a timeout, a malformed message, a BYE not answered 200).
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter

from hybridge.cloud.callservice_peer import NO_EDGE, REASONS
from hybridge.core.sip import Request, Response

TEST_CALL_RESULTS = ("ok", "tls_failed", "edge_refused", "rejected", "failed")
NO_FINAL = "none"

CONNECTIONS_ACCEPTED = Counter(
    "hybridge_cloud_callservice_connections_accepted_total",
    "Edge connections to the call service admitted (mutual TLS and name rule passed).",
)
CONNECTIONS_REFUSED = Counter(
    "hybridge_cloud_callservice_connections_refused_total",
    "Edge connections to the call service refused, by reason.",
    ["reason"],
)
CALLS_ANSWERED = Counter(
    "hybridge_cloud_callservice_calls_answered_total",
    "Calls (new INVITE transactions) the call service answered, by final status.",
    ["status"],
)
CALLS_PLACED = Counter(
    "hybridge_cloud_callservice_calls_placed_total",
    "Calls the call service placed to an edge, by the INVITE's final status ('none': none).",
    ["status"],
)
TEST_CALLS = Counter(
    "hybridge_cloud_callservice_test_calls_total",
    "Test calls to an organisation's edge, by result.",
    ["result"],
)

for _reason in (*REASONS, NO_EDGE):
    CONNECTIONS_REFUSED.labels(reason=_reason)
for _result in TEST_CALL_RESULTS:
    TEST_CALLS.labels(result=_result)


def record_refusal(reason: str) -> None:
    """Count one refused connection under ``reason`` (a stable code, see the docstring)."""
    CONNECTIONS_REFUSED.labels(reason=reason).inc()


def record_accepted() -> None:
    """Count one admitted edge connection."""
    CONNECTIONS_ACCEPTED.inc()


def record_answers(request: Request, answers: Sequence[Response]) -> None:
    """Count a call answered when ``answers`` are the UAS's replies to a new INVITE.

    RFC 3261 §8.2.6.1: the 100 Trying goes out only when an INVITE transaction is first
    processed; a retransmission gets its final response again without it, and must not be
    counted as a second call.
    """
    if request.method != "INVITE" or not answers or answers[0].status_code != 100:
        return
    final = [a for a in answers if a.status_code >= 200]
    if final:
        CALLS_ANSWERED.labels(status=str(final[-1].status_code)).inc()


def record_test_call(result: str, invite_status: int | None) -> None:
    """Count one test call: its ``result`` and the INVITE's final status (None: none).

    Raises:
        ValueError: ``result`` is not one of ``TEST_CALL_RESULTS`` (a bug, not input).
    """
    if result not in TEST_CALL_RESULTS:
        raise ValueError(f"test call result {result!r} is not one of {TEST_CALL_RESULTS}")
    TEST_CALLS.labels(result=result).inc()
    CALLS_PLACED.labels(status=NO_FINAL if invite_status is None else str(invite_status)).inc()
