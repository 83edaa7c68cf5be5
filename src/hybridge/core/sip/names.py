"""Header names: canonical spellings, compact forms, and which headers are lists."""

from __future__ import annotations

# RFC 3261 §7.3.3 and the extensions that registered one (RFC 3265/6665 o u, RFC 3515 r,
# RFC 3892 b, RFC 4028 x, RFC 8224 y, RFC 3841 a j d, RFC 4474 n).
COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "y": "Identity",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "n": "Identity-Info",
}

# Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1 allows them on one line
# or many). Everything else (unknown headers included, RFC 4475 §3.1.1.1) is one value:
# WWW-Authenticate, Authorization, Date and friends contain commas that are not separators.
LIST_HEADERS = frozenset(
    {
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "History-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Require",
        "Route",
        "Security-Client",
        "Security-Server",
        "Security-Verify",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    }
)

_KNOWN_NAMES = (
    *COMPACT_FORMS.values(),
    *LIST_HEADERS,
    "Authorization",
    "Authentication-Info",
    "CSeq",
    "Date",
    "Expires",
    "Max-Forwards",
    "Min-Expires",
    "Organization",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Reply-To",
    "Retry-After",
    "Server",
    "Timestamp",
    "User-Agent",
    "WWW-Authenticate",
)
# lower-case name or compact form -> canonical spelling
CANONICAL_NAMES = {name.lower(): name for name in _KNOWN_NAMES}
CANONICAL_NAMES.update(COMPACT_FORMS)
# the canonical spellings themselves, so the usual case needs no str.lower()
CANONICAL_NAMES.update({name: name for name in _KNOWN_NAMES})


def canonical_name(name: str) -> str:
    """Return the canonical spelling of a header name; compact forms expand (``v`` -> ``Via``).

    Unknown names are returned as given: header names compare case-insensitively (§7.3.1).
    """
    return CANONICAL_NAMES.get(name) or CANONICAL_NAMES.get(name.lower(), name)
