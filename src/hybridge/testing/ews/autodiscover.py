"""SOAP Autodiscover (``/autodiscover/autodiscover.svc``, GetUserSettings), as exchangelib 5.x
uses it, and POX Autodiscover (``/autodiscover/autodiscover.xml``) for older clients.

Both answer with this server's own ``/EWS/Exchange.asmx`` URL for a mailbox that exists and
``InvalidUser`` (SOAP) / error 500 "Invalid Mailbox" (POX) for one that does not.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hybridge.testing.ews.directory import Directory
from hybridge.testing.ews.soap import WSA, A, S, el, local, sub

POX_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
POX_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
POX_OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def _settings_for(directory: Directory, smtp: str, ews_url: str) -> dict[str, str]:
    acct = directory.mailbox_account(smtp)
    display = acct.display_name if acct is not None else smtp
    return {
        "AutoDiscoverSMTPAddress": smtp,
        "UserDisplayName": display or smtp,
        "InternalEwsUrl": ews_url,
        "ExternalEwsUrl": ews_url,
        "EwsSupportedSchemas": "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, "
        "Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2016",
        "CasVersion": "15.01.2507.006",
    }


def get_user_settings(directory: Directory, op: ET.Element, ews_url: str) -> bytes:
    """Answer a GetUserSettingsRequestMessage; returns the full response envelope."""
    requested = [s.text or "" for s in op.iterfind(f".//{{{A}}}RequestedSettings/{{{A}}}Setting")]
    env = el(S, "Envelope")
    header = sub(env, S, "Header")
    sub(
        header,
        WSA,
        "Action",
        "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse",
    )
    info = sub(header, A, "ServerVersionInfo")
    for name, value in (
        ("MajorVersion", "15"),
        ("MinorVersion", "1"),
        ("MajorBuildNumber", "2507"),
        ("MinorBuildNumber", "6"),
        ("Version", "Exchange2015"),
    ):
        sub(info, A, name, value)
    body = sub(env, S, "Body")
    message = sub(body, A, "GetUserSettingsResponseMessage")
    response = sub(message, A, "Response")
    sub(response, A, "ErrorCode", "NoError")
    sub(response, A, "ErrorMessage", "")
    responses = sub(response, A, "UserResponses")
    for user in op.iterfind(f".//{{{A}}}Users/{{{A}}}User"):
        smtp = (user.findtext(f"{{{A}}}Mailbox") or "").strip().lower()
        user_response = sub(responses, A, "UserResponse")
        if directory.mailbox_account(smtp) is None:
            sub(user_response, A, "ErrorCode", "InvalidUser")
            sub(user_response, A, "ErrorMessage", f"Invalid user: '{smtp}'")
            continue
        sub(user_response, A, "ErrorCode", "NoError")
        sub(user_response, A, "ErrorMessage", "No error.")
        errors = sub(user_response, A, "UserSettingErrors")
        settings = sub(user_response, A, "UserSettings")
        known = _settings_for(directory, smtp, ews_url)
        for name in requested:
            if name in known:
                setting = sub(settings, A, "UserSetting", **{XSI_TYPE: "StringSetting"})
                sub(setting, A, "Name", name)
                sub(setting, A, "Value", known[name])
            else:
                error = sub(errors, A, "UserSettingError")
                sub(error, A, "ErrorCode", "SettingIsNotAvailable")
                sub(error, A, "ErrorMessage", "User setting is not available.")
                sub(error, A, "SettingName", name)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(env)


def pox_response(directory: Directory, request_root: ET.Element, ews_url: str) -> bytes:
    """Answer a POX Autodiscover request (``EMailAddress`` in the 2006 request schema)."""
    address = ""
    for child in request_root.iter():
        if local(child.tag) == "EMailAddress":
            address = (child.text or "").strip().lower()
    root = el(POX_RESPONSE_NS, "Autodiscover")
    if directory.mailbox_account(address) is None:
        response = sub(root, POX_RESPONSE_NS, "Response")
        error = sub(response, POX_RESPONSE_NS, "Error", Time="00:00:00", Id="0")
        sub(error, POX_RESPONSE_NS, "ErrorCode", "500")
        sub(error, POX_RESPONSE_NS, "Message", "The email address can't be found.")
    else:
        response = sub(root, POX_OUTLOOK_NS, "Response")
        user = sub(response, POX_OUTLOOK_NS, "User")
        sub(user, POX_OUTLOOK_NS, "AutoDiscoverSMTPAddress", address)
        account = sub(response, POX_OUTLOOK_NS, "Account")
        sub(account, POX_OUTLOOK_NS, "AccountType", "email")
        sub(account, POX_OUTLOOK_NS, "Action", "settings")
        protocol = sub(account, POX_OUTLOOK_NS, "Protocol")
        sub(protocol, POX_OUTLOOK_NS, "Type", "EXPR")
        sub(protocol, POX_OUTLOOK_NS, "EwsUrl", ews_url)
        sub(protocol, POX_OUTLOOK_NS, "ASUrl", ews_url)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root)
