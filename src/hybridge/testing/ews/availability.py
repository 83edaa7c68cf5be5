"""GetUserOofSettings: a mailbox's automatic replies (EWS availability service)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from hybridge.testing.ews.items import RequestContext
from hybridge.testing.ews.soap import M, T, el, sub


def get_user_oof_settings(ctx: RequestContext, op: ET.Element) -> ET.Element:
    """GetUserOofSettings: the result sits beside the ResponseMessage, not inside it."""
    address = (op.findtext(f"{{{T}}}Mailbox/{{{T}}}Address") or "").strip().lower()
    resp = el(M, "GetUserOofSettingsResponse")
    msg = sub(resp, M, "ResponseMessage", ResponseClass="Success")
    if address != ctx.mailbox:
        msg.set("ResponseClass", "Error")
        sub(msg, M, "MessageText", f"no access to the automatic replies of {address}")
        sub(msg, M, "ResponseCode", "ErrorAccessDenied")
        return resp
    sub(msg, M, "ResponseCode", "NoError")
    oof = ctx.store.oof(address)
    settings = sub(resp, T, "OofSettings")
    sub(settings, T, "OofState", oof.state)
    sub(settings, T, "ExternalAudience", oof.external_audience)
    if oof.start is not None and oof.end is not None:
        duration = sub(settings, T, "Duration")
        sub(duration, T, "StartTime", oof.start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        sub(duration, T, "EndTime", oof.end.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    sub(sub(settings, T, "InternalReply"), T, "Message", oof.internal_reply)
    sub(sub(settings, T, "ExternalReply"), T, "Message", oof.external_reply)
    sub(resp, M, "AllowExternalOof", "All")
    return resp
