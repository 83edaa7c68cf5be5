"""The connector's control-channel pages: ``/control`` (HTML) and ``/api/control`` (JSON).

Both show the same facts, from ``ChannelStatus.view()``: the channel's state and since when,
the next reconnect attempt while the cloud is unreachable, the last heartbeat sent and the
last one the cloud acknowledged, the installed CA-list sequence against the cloud's, the
last push (when, which sequence, applied or refused and why, the fingerprints it added and
removed) and the alarms. No identifier beyond what the admin already sees, no secret.
``/metrics`` carries the same as counts (``control_metrics``).
"""

# No ``from __future__ import annotations``: FastAPI must resolve the routes' local
# ``Annotated`` dependency alias at definition time.
import datetime as dt
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hybridge.web.pages import render
from hybridge.web.sessions import WebSession

#: How a state reads on the page, and its badge.
STATES = {
    "connected": ("connected", "ok"),
    "connecting": ("connecting", "warn"),
    "offline": ("reconnecting", "bad"),
    "not_registered": ("not registered", "warn"),
    "starting": ("starting", "warn"),
}


def _when(at: float | None, now: float) -> dict[str, str] | None:
    """``at`` as an ISO time (UTC) and a relative phrase ("12 s ago", "in 3 s")."""
    if at is None:
        return None
    iso = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = round(at - now)
    if delta == 0:
        relative = "now"
    elif delta > 0:
        relative = f"in {_span(delta)}"
    else:
        relative = f"{_span(-delta)} ago"
    return {"iso": iso, "relative": relative}


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def present(view: dict[str, Any], now: float) -> dict[str, Any]:
    """The page's values from ``ChannelStatus.view()`` at ``now`` (POSIX seconds)."""
    label, badge = STATES.get(view["state"], (view["state"], "warn"))
    push = view.get("last_push")
    installed, current = view.get("installed_seq"), view.get("cloud_seq")
    return {
        "state": view["state"],
        "label": label,
        "badge": badge,
        "since": _when(view["since"], now),
        "next_attempt": _when(view.get("next_attempt_at"), now),
        "attempt": view.get("attempt", 0),
        "last_error": view.get("last_error"),
        "unreachable_since": _when(view.get("unreachable_since"), now),
        "heartbeat_interval": view.get("heartbeat_interval"),
        "last_heartbeat_sent": _when(view.get("last_heartbeat_sent"), now),
        "last_heartbeat_acked": _when(view.get("last_heartbeat_acked"), now),
        "installed_seq": installed,
        "cloud_seq": current,
        "behind": installed is not None and current is not None and installed < current,
        "last_push": None if push is None else {**push, "when": _when(push.get("at"), now)},
        "alarms": list(view.get("alarms") or ()),
        "connections": view.get("connections", 0),
    }


def control_router(
    status_view: Callable[[], dict[str, Any]], admin: Any, templates: Jinja2Templates
) -> APIRouter:
    """``GET /control`` (page), ``GET /api/control`` (JSON), ``GET /metrics``."""
    router = APIRouter()
    Admin = Annotated[WebSession, Depends(admin)]

    @router.get("/control")
    def channel_page(request: Request, web: Admin) -> Response:
        channel = present(status_view(), time.time())
        return render(templates, request, "control_status.html", {"channel": channel}, web=web)

    @router.get("/api/control")
    def channel_status(_admin: Admin) -> JSONResponse:
        return JSONResponse(status_view())

    @router.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        # Counts and states only: no id, no fingerprint, no secret.
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
