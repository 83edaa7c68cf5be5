"""Raw EWS SOAP requests, written as a client would put them on the wire."""

from __future__ import annotations

import xml.etree.ElementTree as ET

#: The impersonation account's password in the test directory.
SVC_PASSWORD = "Svc-P@ss-4711"

NS = {
    "s": "http://schemas.xmlsoap.org/soap/envelope/",
    "m": "http://schemas.microsoft.com/exchange/services/2006/messages",
    "t": "http://schemas.microsoft.com/exchange/services/2006/types",
    "e": "http://schemas.microsoft.com/exchange/services/2006/errors",
}


def envelope(body: str, *, impersonate: str | None = None, version: str = "Exchange2016") -> bytes:
    imp = ""
    if impersonate:
        imp = (
            "<t:ExchangeImpersonation><t:ConnectingSID>"
            f"<t:PrimarySmtpAddress>{impersonate}</t:PrimarySmtpAddress>"
            "</t:ConnectingSID></t:ExchangeImpersonation>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:m="{NS["m"]}" xmlns:t="{NS["t"]}">'
        f'<s:Header><t:RequestServerVersion Version="{version}"/>{imp}</s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


GET_CALENDAR = (
    "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
    '<m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds></m:GetFolder>'
)


def sync_items(state: str | None, max_changes: int = 2) -> str:
    st = f"<m:SyncState>{state}</m:SyncState>" if state else ""
    return (
        "<m:SyncFolderItems><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>"
        '<m:SyncFolderId><t:DistinguishedFolderId Id="calendar"/></m:SyncFolderId>'
        f"{st}<m:MaxChangesReturned>{max_changes}</m:MaxChangesReturned></m:SyncFolderItems>"
    )


def parse(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 - our own emulator's output


def response_code(content: bytes) -> str:
    root = parse(content)
    code = root.find(".//m:ResponseCode", NS)
    if code is None:
        code = root.find(".//e:ResponseCode", NS)
    assert code is not None, content
    return code.text or ""
