"""``host:port`` text: splitting it, checking the host, writing it back.

The edge's zones, the call service's edge addresses and the connector's traversal settings
all take an address an administrator typed. The syntax rules are shared here; each caller
words its own refusal (it knows what the address is for), so these functions return None
or False rather than raising.

Written by hand: ``urllib.parse`` and ``ipaddress`` each cover half (a bare ``host:port`` is
not a URL, and ``ipaddress`` knows no host names); the rules are a dozen lines.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# RFC 1123 §2.1: letters, digits and hyphens, 1..63 characters, no hyphen at either end.
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
#: RFC 1035 §2.3.4: a name is at most 253 characters in text form (255 octets on the wire).
MAX_HOST_NAME_LENGTH = 253


@dataclass(frozen=True, slots=True)
class HostPortText:
    """``host`` and ``port_text`` as split from an address; ``port`` is None when
    ``port_text`` is not a decimal number (the caller refuses it, quoting ``port_text``)."""

    host: str
    port_text: str

    @property
    def port(self) -> int | None:
        """``port_text`` as a number, or None (only ASCII digits count: ``int`` takes "٣")."""
        text = self.port_text
        return int(text) if text.isascii() and text.isdigit() else None


def split_host_port(text: str, default_port: int) -> HostPortText | None:
    """``host:port``, ``[v6]:port``, ``[v6]`` or ``host`` split; ``default_port`` when none.

    Returns None for a ``[`` without its ``]``, or text after ``]`` that is not ``:port``.
    Text with several colons and no brackets is returned whole as the host with the default
    port (a bare IPv6 literal; a caller that wants brackets refuses it first). The host is
    not checked here (``is_ip_or_host_name``).
    """
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        return HostPortText(host, rest[1:] if rest else str(default_port))
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        return HostPortText(host, port_text)
    return HostPortText(text, str(default_port))


def is_ip_or_host_name(host: str) -> bool:
    """True for an IPv4/IPv6 literal (no brackets) or a DNS host name (RFC 1123 §2.1).

    A trailing dot (a fully qualified name) is allowed; an empty host is not.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    labels = host.rstrip(".").split(".")
    return len(host) <= MAX_HOST_NAME_LENGTH and all(_HOST_LABEL.fullmatch(x) for x in labels)


def join_host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 literal bracketed (RFC 3986 §3.2.2, RFC 3261 §25.1)."""
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{bracketed}:{port}"
