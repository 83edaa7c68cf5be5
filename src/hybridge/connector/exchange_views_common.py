"""What the EWS and the Exchange Online (Graph) pages and API share, written once.

Both read an admin form whose one write-only field becomes a ``Secret`` (never a ``str``
kept), both take a JSON save body whose secret is popped out of it before anything else
sees it, and both answer a save the same way: 422 with the failed test and nothing stored,
else 201 (created) or 200 (replaced).

No ``from __future__ import annotations`` here: see ``hybridge.web.auth``.
"""

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from hybridge.connector.credential_link import IssuedLink
from hybridge.connector.exchange_errors import ExchangeConfigInvalid
from hybridge.vault import Secret
from hybridge.web.sessions import WebSession

#: Longest form field accepted (a URL); a browser never needs more.
MAX_FIELD = 2000
#: The page's error when a save's connection test failed and nothing was stored.
REFUSED_MESSAGE = (
    "The connection test failed, so nothing was saved. Fix the settings, or "
    "tick “save anyway” to keep them."
)


def actor(web: WebSession) -> str:
    """The audit actor of an admin request: ``web:<login>``."""
    return f"web:{web.admin_login}"


async def read_form(request: Request, secret_field: str) -> tuple[dict[str, str], Secret | None]:
    """The form's text fields (bounded) and ``secret_field`` as a ``Secret`` (None if empty).

    Raises:
        ExchangeConfigInvalid: a field is not text or is longer than ``MAX_FIELD``.
    """
    form = await request.form()
    fields: dict[str, str] = {}
    secret: Secret | None = None
    for key, value in form.multi_items():
        if not isinstance(value, str) or len(value) > MAX_FIELD:
            raise ExchangeConfigInvalid(f"form field {key!r} is not text of at most {MAX_FIELD}")
        if key == secret_field:
            secret = Secret.from_text(value) if value else None
        else:
            fields[key] = value
    return fields, secret


async def read_save_body(
    request: Request, secret_key: str, expected: str
) -> tuple[dict[str, Any], Secret | None]:
    """The API's save body without ``secret_key``, and that secret (None if absent/empty).

    Raises:
        ExchangeConfigInvalid: not JSON, not ``expected`` (quoted in the message), or the
            secret is not a string.
    """
    try:
        body = await request.json()
    except ValueError as exc:
        raise ExchangeConfigInvalid("the request body is not JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
        raise ExchangeConfigInvalid(f"expected {expected}")
    raw = body.pop(secret_key, None)
    if raw is not None and not isinstance(raw, str):
        raise ExchangeConfigInvalid(f"{secret_key} must be a string")
    secret = Secret.from_text(raw) if raw else None
    del raw
    return body, secret


def save_answer(saved: bool, view: dict[str, Any], config_id: str | None) -> JSONResponse:
    """The API's answer to a save: 422 when refused, 201 created, 200 replaced."""
    if not saved:
        return JSONResponse({"error": "connection test failed; nothing saved", **view}, 422)
    return JSONResponse(view, 201 if config_id is None else 200)


def link_page_view(issued: IssuedLink, base_url: str) -> dict[str, str]:
    """A new credential-entry link as the edit page shows it (once)."""
    return {
        "url": base_url + issued.path(),
        "expires_at": issued.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
    }
