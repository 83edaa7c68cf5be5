"""SOAP 1.1 envelopes, EWS namespaces, response messages and faults.

Shapes follow Microsoft's messages.xsd / types.xsd and what Exchange 2016 puts on the wire:
``ServerVersionInfo`` in the response header, ``ResponseClass``/``ResponseCode`` in each
response message, and request-level errors (impersonation, throttling, bad server version)
as a SOAP Fault with HTTP 500 whose ``detail`` carries ``e:ResponseCode``, ``e:Message`` and
``t:MessageXml`` (``BackOffMilliseconds`` for ``ErrorServerBusy``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
A = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA = "http://www.w3.org/2005/08/addressing"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

for _prefix, _uri in (("s", S), ("m", M), ("t", T), ("e", E), ("a", A), ("wsa", WSA)):
    ET.register_namespace(_prefix, _uri)

#: Requests larger than this are refused with 413 (IIS's default maxAllowedContentLength for
#: EWS is 30,000,000 bytes; a test emulator needs far less).
MAX_REQUEST_BYTES = 4 * 1024 * 1024

#: RequestServerVersion values an Exchange 2016 CU accepts (types.xsd ExchangeVersionType).
KNOWN_VERSIONS = frozenset(
    {
        "Exchange2007",
        "Exchange2007_SP1",
        "Exchange2009",
        "Exchange2010",
        "Exchange2010_SP1",
        "Exchange2010_SP2",
        "Exchange2013",
        "Exchange2013_SP1",
        "Exchange2015",
        "Exchange2016",
        "V2015_10_05",
        "V2016_01_06",
        "V2016_04_13",
        "V2016_07_13",
        "V2016_10_10",
        "V2017_01_07",
        "V2017_04_14",
        "V2017_07_11",
    }
)

#: What we report: Exchange Server 2016 CU23 (15.1.2507.6).
SERVER_VERSION = {
    "MajorVersion": "15",
    "MinorVersion": "1",
    "MajorBuildNumber": "2507",
    "MinorBuildNumber": "6",
    "Version": "V2017_07_11",
}


def el(ns: str, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    """A new element ``{ns}name`` with optional text and attributes."""
    elem = ET.Element(f"{{{ns}}}{name}", attrs)
    if text is not None:
        elem.text = text
    return elem


def sub(
    parent: ET.Element, ns: str, name: str, text: str | None = None, **attrs: str
) -> ET.Element:
    """Append a new child ``{ns}name`` to ``parent`` and return it."""
    child = ET.SubElement(parent, f"{{{ns}}}{name}", attrs)
    if text is not None:
        child.text = text
    return child


def local(tag: str) -> str:
    """``{ns}Name`` -> ``Name``."""
    return tag.rsplit("}", 1)[-1]


class SoapRequestError(ValueError):
    """The request is not a SOAP envelope we can read (answered with ErrorSchemaValidation)."""


@dataclass(frozen=True)
class SoapRequest:
    """A parsed request: header element (maybe None) and the operation element in the body."""

    header: ET.Element | None
    operation: ET.Element

    @property
    def name(self) -> str:
        return local(self.operation.tag)

    def header_child(self, ns: str, name: str) -> ET.Element | None:
        return None if self.header is None else self.header.find(f"{{{ns}}}{name}")


def parse_request(data: bytes) -> SoapRequest:
    """Parse a SOAP 1.1 request; raises SoapRequestError with the reason."""
    try:
        # expat >= 2.4 (Python 3.11 ships 2.5) bounds entity expansion ("billion laughs"), and
        # ElementTree never fetches external entities, so a client cannot make us read files.
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError as exc:
        raise SoapRequestError(f"request is not well-formed XML: {exc}") from exc
    if root.tag != f"{{{S}}}Envelope":
        raise SoapRequestError(f"root element is {root.tag!r}, not a SOAP 1.1 Envelope")
    body = root.find(f"{{{S}}}Body")
    if body is None or len(body) != 1:
        raise SoapRequestError("SOAP Body must hold exactly one operation element")
    return SoapRequest(root.find(f"{{{S}}}Header"), body[0])


class Prebuilt(ET.Element):
    """An element whose content is bytes serialized earlier (``content``), spliced in by
    :func:`envelope` instead of being built as elements and serialized again.

    The content must use only prefixes the envelope declares at its root (``t:`` and
    ``m:`` are, through ``ServerVersionInfo`` and the response elements).
    """

    content: bytes


#: Stands for a Prebuilt's content while ElementTree serializes (no XML text holds NUL).
_SPLICE = "\x00"


def prebuilt(parent: ET.Element, ns: str, name: str, content: bytes) -> Prebuilt:
    """Append ``<name>content</name>`` to ``parent`` (see :class:`Prebuilt`)."""
    elem = Prebuilt(f"{{{ns}}}{name}")
    elem.content = content
    parent.append(elem)
    return elem


def envelope(body_child: ET.Element | None, *, version_header: bool = True) -> bytes:
    """Serialize a response envelope carrying ``ServerVersionInfo`` and ``body_child``."""
    env = el(S, "Envelope")
    if version_header:
        header = sub(env, S, "Header")
        sub(header, T, "ServerVersionInfo", **SERVER_VERSION)
    body = sub(env, S, "Body")
    if body_child is not None:
        body.append(body_child)
    spliced = [e for e in env.iter() if isinstance(e, Prebuilt)]
    for elem in spliced:
        elem.text = _SPLICE
    out = ET.tostring(env)
    if spliced:
        pieces = out.split(_SPLICE.encode())
        if len(pieces) != len(spliced) + 1:
            raise ValueError("a NUL outside the spliced elements: cannot splice")
        out = pieces[0] + b"".join(e.content + p for e, p in zip(spliced, pieces[1:], strict=True))
    return b'<?xml version="1.0" encoding="utf-8"?>' + out


def fault(code: str, message: str, values: dict[str, str] | None = None) -> bytes:
    """A SOAP Fault as Exchange sends for request-level EWS errors (sent with HTTP 500)."""
    env = el(S, "Envelope")
    body = sub(env, S, "Body")
    flt = sub(body, S, "Fault")
    # faultcode is a QName in the types namespace, as Exchange writes "a:ErrorServerBusy".
    ET.SubElement(flt, "faultcode").text = f"t:{code}"
    ET.SubElement(
        flt, "faultstring", {"{http://www.w3.org/XML/1998/namespace}lang": "en-US"}
    ).text = message
    detail = ET.SubElement(flt, "detail")
    sub(detail, E, "ResponseCode", code)
    sub(detail, E, "Message", message)
    if values:
        msg_xml = sub(detail, T, "MessageXml")
        for name, value in values.items():
            sub(msg_xml, T, "Value", value, Name=name)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(env)


def response_message(operation: str, code: str = "NoError", text: str = "") -> ET.Element:
    """A ``m:<Operation>ResponseMessage`` with ResponseClass derived from ``code``."""
    cls = "Success" if code == "NoError" else "Error"
    msg = el(M, f"{operation}ResponseMessage", ResponseClass=cls)
    if code != "NoError":
        sub(msg, M, "MessageText", text or code)
    sub(msg, M, "ResponseCode", code)
    if code != "NoError":
        sub(msg, M, "DescriptiveLinkKey", "0")
    return msg


def operation_response(operation: str, messages: list[ET.Element]) -> ET.Element:
    """``m:<Operation>Response/m:ResponseMessages/...``."""
    resp = el(M, f"{operation}Response")
    container = sub(resp, M, "ResponseMessages")
    container.extend(messages)
    return resp
