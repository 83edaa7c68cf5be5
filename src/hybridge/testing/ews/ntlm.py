"""The server side of NTLM (MS-NLMP) over HTTP, as IIS runs it in front of Exchange.

Written by hand because no maintained library verifies NTLMv2 against credentials held in
memory: pyspnego's acceptor reads its users from a file named by the process-wide
``NTLM_USER_FILE`` variable (two emulators in one test process would share it), and it would
not let us tell a wrong password from an expired one. The protocol is small: three messages,
one HMAC-MD5 proof, one MIC. MD4 is written out too, because OpenSSL 3 moved it to the legacy
provider and ``hashlib.new("md4")`` fails on Debian.

What it checks (MS-NLMP §3.2.5.1.2 / §3.3.2, server side):

- only NTLMv2 responses (NT response longer than 24 bytes); NTLMv1 and anonymous are refused,
  as Exchange does with ``LmCompatibilityLevel`` 5;
- the NTProofStr, computed from the user's password and the server challenge we issued;
- the MIC over the three messages when the client says it sent one (``MsvAvFlags`` bit 0x2);
- the channel binding token (``MsvAvChannelBindings``, RFC 5929 ``tls-server-end-point``)
  when the client sends a non-zero one: Exchange's Extended Protection.

The exchange is a tiny state machine per TCP connection (NTLM authenticates the connection,
not the request): :meth:`NtlmAcceptor.step` takes the client's token and returns either a
challenge token or a verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

SIGNATURE = b"NTLMSSP\x00"

# MS-NLMP §2.2.2.5 negotiate flags.
NEGOTIATE_UNICODE = 0x00000001
REQUEST_TARGET = 0x00000004
NEGOTIATE_SIGN = 0x00000010
NEGOTIATE_SEAL = 0x00000020
NEGOTIATE_NTLM = 0x00000200
NEGOTIATE_ALWAYS_SIGN = 0x00008000
TARGET_TYPE_DOMAIN = 0x00010000
NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NEGOTIATE_TARGET_INFO = 0x00800000
NEGOTIATE_VERSION = 0x02000000
NEGOTIATE_128 = 0x20000000
NEGOTIATE_KEY_EXCH = 0x40000000
NEGOTIATE_56 = 0x80000000

# MS-NLMP §2.2.2.1 AV_PAIR ids.
AV_EOL = 0
AV_NB_COMPUTER = 1
AV_NB_DOMAIN = 2
AV_DNS_COMPUTER = 3
AV_DNS_DOMAIN = 4
AV_FLAGS = 6
AV_TIMESTAMP = 7
AV_CHANNEL_BINDINGS = 10

#: Largest token we parse; Windows clients send a few hundred bytes.
MAX_TOKEN_SIZE = 8192


class NtlmProtocolError(ValueError):
    """A malformed or out-of-order NTLM message (the server answers 400 or 401)."""


def md4(data: bytes) -> bytes:
    """Return the MD4 digest of ``data`` (RFC 1320), needed only for the NT hash."""

    def rotl(x: int, n: int) -> int:
        x &= 0xFFFFFFFF
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF

    msg = bytearray(data)
    bit_len = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    msg.append(0x80)
    while len(msg) % 64 != 56:
        msg.append(0)
    msg += struct.pack("<Q", bit_len)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off : off + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in (0, 4, 8, 12):  # round 1: F(x,y,z) = xy v not(x)z
            a = rotl(a + ((b & c) | (~b & d)) + x[i], 3)
            d = rotl(d + ((a & b) | (~a & c)) + x[i + 1], 7)
            c = rotl(c + ((d & a) | (~d & b)) + x[i + 2], 11)
            b = rotl(b + ((c & d) | (~c & a)) + x[i + 3], 19)
        for i in (0, 1, 2, 3):  # round 2: G(x,y,z) = xy v xz v yz
            a = rotl(a + ((b & c) | (b & d) | (c & d)) + x[i] + 0x5A827999, 3)
            d = rotl(d + ((a & b) | (a & c) | (b & c)) + x[i + 4] + 0x5A827999, 5)
            c = rotl(c + ((d & a) | (d & b) | (a & b)) + x[i + 8] + 0x5A827999, 9)
            b = rotl(b + ((c & d) | (c & a) | (d & a)) + x[i + 12] + 0x5A827999, 13)
        for i in (0, 2, 1, 3):  # round 3: H(x,y,z) = x xor y xor z
            a = rotl(a + (b ^ c ^ d) + x[i] + 0x6ED9EBA1, 3)
            d = rotl(d + (a ^ b ^ c) + x[i + 8] + 0x6ED9EBA1, 9)
            c = rotl(c + (d ^ a ^ b) + x[i + 4] + 0x6ED9EBA1, 11)
            b = rotl(b + (c ^ d ^ a) + x[i + 12] + 0x6ED9EBA1, 15)
        a, b, c, d = (
            (a + aa) & 0xFFFFFFFF,
            (b + bb) & 0xFFFFFFFF,
            (c + cc) & 0xFFFFFFFF,
            (d + dd) & 0xFFFFFFFF,
        )
    return struct.pack("<4I", a, b, c, d)


def ntowf_v2(password: str, user: str, domain: str) -> bytes:
    """MS-NLMP §3.3.2 NTOWFv2: HMAC_MD5(MD4(UNICODE(password)), UNICODE(UPPER(user) + domain))."""
    nt_hash = md4(password.encode("utf-16-le"))
    return hmac.new(nt_hash, (user.upper() + domain).encode("utf-16-le"), "md5").digest()


def channel_binding_hash(server_cert_der: bytes) -> bytes:
    """Return the MsvAvChannelBindings value a client computes for our certificate.

    RFC 5929 §4: ``tls-server-end-point`` is the certificate hashed with its signature hash,
    SHA-256 when that is MD5 or SHA-1; MS-NLMP §2.2.2.1 puts MD5(gss_channel_bindings_struct)
    with only application data set in the AV pair.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_der_x509_certificate(server_cert_der)
    algo = cert.signature_hash_algorithm
    if algo is None or isinstance(algo, hashes.MD5 | hashes.SHA1):
        algo = hashes.SHA256()
    digest = hashes.Hash(algo)
    digest.update(server_cert_der)
    app_data = b"tls-server-end-point:" + digest.finalize()
    struct_bytes = b"\x00" * 16 + struct.pack("<I", len(app_data)) + app_data
    return hashlib.md5(struct_bytes, usedforsecurity=False).digest()


def _field(msg: bytes, offset: int) -> bytes:
    """Read a MS-NLMP security buffer (len, maxlen, offset) at ``offset``."""
    if len(msg) < offset + 8:
        raise NtlmProtocolError(f"message too short for a field at offset {offset}")
    length, _max, start = struct.unpack("<HHI", msg[offset : offset + 8])
    if start + length > len(msg):
        raise NtlmProtocolError(f"field at offset {offset} points outside the message")
    return msg[start : start + length]


def _av_pairs(data: bytes) -> dict[int, bytes]:
    pairs: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(data):
        av_id, av_len = struct.unpack("<HH", data[pos : pos + 4])
        if av_id == AV_EOL:
            return pairs
        if pos + 4 + av_len > len(data):
            raise NtlmProtocolError("AV pair runs past the end of the target info")
        pairs[av_id] = data[pos + 4 : pos + 4 + av_len]
        pos += 4 + av_len
    raise NtlmProtocolError("target info has no MsvAvEOL terminator")


def _pack_av(av_id: int, value: bytes) -> bytes:
    return struct.pack("<HH", av_id, len(value)) + value


@dataclass(frozen=True)
class NtlmIdentity:
    """What the client proved: the names it sent in the AUTHENTICATE message."""

    domain: str
    user: str


@dataclass(frozen=True)
class NtlmVerdict:
    """The outcome of the AUTHENTICATE step: ``identity`` on success, else a ``reason``."""

    identity: NtlmIdentity | None
    reason: str = ""


#: Looks an account up by (domain, user) as the client sent them and returns its password,
#: or ``None`` when there is no such account (or it may not log on: expired, disabled).
PasswordLookup = Callable[[str, str], "str | None"]


class NtlmAcceptor:
    """One connection's NTLM exchange: NEGOTIATE -> CHALLENGE, AUTHENTICATE -> verdict."""

    def __init__(
        self,
        lookup: PasswordLookup,
        *,
        netbios_domain: str,
        dns_domain: str,
        computer: str,
        server_cert_der: bytes | None,
        filetime_now: int,
    ) -> None:
        self._lookup = lookup
        self._netbios_domain = netbios_domain
        self._dns_domain = dns_domain
        self._computer = computer
        self._expected_cbt = channel_binding_hash(server_cert_der) if server_cert_der else None
        self._filetime_now = filetime_now
        self._negotiate: bytes | None = None
        self._challenge: bytes | None = None
        self._server_challenge = b""

    def step(self, token: bytes) -> bytes | NtlmVerdict:
        """Feed one client token; return the CHALLENGE token to send, or the final verdict.

        Raises :class:`NtlmProtocolError` for a malformed or out-of-order message.
        """
        if len(token) > MAX_TOKEN_SIZE:
            raise NtlmProtocolError(f"token of {len(token)} bytes exceeds {MAX_TOKEN_SIZE}")
        if len(token) < 12 or token[:8] != SIGNATURE:
            raise NtlmProtocolError("not an NTLMSSP message")
        (msg_type,) = struct.unpack("<I", token[8:12])
        if msg_type == 1:
            return self._on_negotiate(token)
        if msg_type == 3:
            if self._challenge is None or self._negotiate is None:
                raise NtlmProtocolError("AUTHENTICATE before CHALLENGE on this connection")
            return self._on_authenticate(token)
        raise NtlmProtocolError(f"unexpected NTLM message type {msg_type}")

    def _on_negotiate(self, token: bytes) -> bytes:
        if len(token) < 16:
            raise NtlmProtocolError("NEGOTIATE message too short")
        (client_flags,) = struct.unpack("<I", token[12:16])
        optional = (
            NEGOTIATE_SIGN
            | NEGOTIATE_SEAL
            | NEGOTIATE_KEY_EXCH
            | NEGOTIATE_56
            | NEGOTIATE_128
            | NEGOTIATE_VERSION
        )
        flags = (
            NEGOTIATE_UNICODE
            | REQUEST_TARGET
            | NEGOTIATE_NTLM
            | NEGOTIATE_ALWAYS_SIGN
            | TARGET_TYPE_DOMAIN
            | NEGOTIATE_EXTENDED_SESSIONSECURITY
            | NEGOTIATE_TARGET_INFO
            | (client_flags & optional)
        )
        # MS-NLMP §3.2.5.1.1: a fresh random 8-byte challenge per exchange.
        self._server_challenge = os.urandom(8)
        target_name = self._netbios_domain.encode("utf-16-le")
        target_info = b"".join(
            [
                _pack_av(AV_NB_DOMAIN, self._netbios_domain.encode("utf-16-le")),
                _pack_av(AV_NB_COMPUTER, self._computer.upper().encode("utf-16-le")),
                _pack_av(AV_DNS_DOMAIN, self._dns_domain.encode("utf-16-le")),
                _pack_av(
                    AV_DNS_COMPUTER,
                    f"{self._computer}.{self._dns_domain}".lower().encode("utf-16-le"),
                ),
                _pack_av(AV_TIMESTAMP, struct.pack("<Q", self._filetime_now)),
                _pack_av(AV_EOL, b""),
            ]
        )
        header_len = 56
        version = bytes([10, 0]) + struct.pack("<H", 17763) + b"\x00\x00\x00\x0f"
        challenge = (
            SIGNATURE
            + struct.pack("<I", 2)
            + struct.pack("<HHI", len(target_name), len(target_name), header_len)
            + struct.pack("<I", flags)
            + self._server_challenge
            + b"\x00" * 8
            + struct.pack("<HHI", len(target_info), len(target_info), header_len + len(target_name))
            + version
            + target_name
            + target_info
        )
        self._negotiate = token
        self._challenge = challenge
        return challenge

    def _on_authenticate(self, token: bytes) -> NtlmVerdict:
        assert self._negotiate is not None and self._challenge is not None
        if len(token) < 88:
            raise NtlmProtocolError("AUTHENTICATE message too short")
        nt_response = _field(token, 20)
        domain = _field(token, 28).decode("utf-16-le", "replace")
        user = _field(token, 36).decode("utf-16-le", "replace")
        enc_session_key = _field(token, 52)
        (flags,) = struct.unpack("<I", token[60:64])
        if not user:
            return NtlmVerdict(None, "anonymous NTLM logon refused")
        # MS-NLMP §3.3.2: an NT response of 24 bytes is NTLMv1; Exchange servers run with
        # LmCompatibilityLevel 5 ("refuse LM & NTLM"), so only NTLMv2 is accepted.
        if len(nt_response) <= 24:
            return NtlmVerdict(None, "NTLMv1 response refused: only NTLMv2 is accepted")
        password = self._lookup(domain, user)
        if password is None:
            return NtlmVerdict(None, f"no account may log on as {domain!r}\\{user!r}")
        key = ntowf_v2(password, user, domain)
        proof, temp = nt_response[:16], nt_response[16:]
        expected = hmac.new(key, self._server_challenge + temp, "md5").digest()
        if not hmac.compare_digest(proof, expected):
            return NtlmVerdict(None, "NTProofStr does not match: wrong password")
        # temp = RespType, HiRespType, 6 reserved, timestamp(8), client challenge(8), 4 reserved
        try:
            pairs = _av_pairs(temp[28:])
        except NtlmProtocolError as exc:
            return NtlmVerdict(None, f"bad NTLMv2 client blob: {exc}")
        session_base_key = hmac.new(key, proof, "md5").digest()
        exported_key = session_base_key
        if flags & NEGOTIATE_KEY_EXCH and len(enc_session_key) == 16:
            decryptor = Cipher(ARC4(session_base_key), mode=None).decryptor()
            exported_key = decryptor.update(enc_session_key)
        av_flags = struct.unpack("<I", pairs[AV_FLAGS])[0] if AV_FLAGS in pairs else 0
        if av_flags & 0x2:
            # MS-NLMP §3.1.5.1.2: MIC = HMAC_MD5(ExportedSessionKey, NEG + CHAL + AUTH with
            # the MIC zeroed); it binds the three messages so none can be swapped in flight.
            mic = token[72:88]
            zeroed = token[:72] + b"\x00" * 16 + token[88:]
            want = hmac.new(
                exported_key, self._negotiate + self._challenge + zeroed, "md5"
            ).digest()
            if not hmac.compare_digest(mic, want):
                return NtlmVerdict(None, "MIC does not match: messages were altered")
        cbt = pairs.get(AV_CHANNEL_BINDINGS, b"\x00" * 16)
        # Extended Protection for Authentication: a non-zero binding must name our own TLS
        # certificate, otherwise the client authenticated to a man in the middle.
        if (
            self._expected_cbt is not None
            and cbt != b"\x00" * 16
            and not hmac.compare_digest(cbt, self._expected_cbt)
        ):
            return NtlmVerdict(None, "channel binding does not match this server's certificate")
        return NtlmVerdict(NtlmIdentity(domain=domain, user=user))
