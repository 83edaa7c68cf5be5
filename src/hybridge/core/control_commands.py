"""Signed commands of the control channel: refresh trust, deregister, ping.

A command is a compact JWS (RFC 7515) signed like a CA-list manifest, with the cloud's
Ed25519 list-signing key, under its own explicit type so that neither can pass for the
other (RFC 8725 §3.11)::

    header  {"alg": "EdDSA", "typ": "hybridge-control+jwt", "kid": <RFC 7638 thumbprint>}
    payload {"iss": <cloud URL>, "aud": <connector id>, "cid": <command id>,
             "cmd": <name>, "iat": <unix seconds>, "args": {<str>: <str>}?}

It is addressed to one connector (``aud`` required) and numbered by a command id that
must grow per connector: a replayed or reordered command is refused. It also expires
(``iat`` older than ``max_age``), so a captured command cannot be held back and used later
even by a connector that lost its last-seen id. The JOSE mechanics are joserfc's, as in
``core.manifest``; only the policy is written here.

Errors (each a ``ControlError`` with the ``reason`` the connector reports back)::

    CommandError                  (core.control.ControlError)
     ├── CommandMalformed         reason "malformed"
     ├── CommandWrongAlgorithm    reason "wrong_algorithm"
     ├── CommandBadSignature      reason "bad_signature"
     ├── CommandWrongAudience     reason "wrong_audience"
     ├── CommandReplayed          reason "replayed"
     ├── CommandExpired           reason "expired"
     ├── CommandFromFuture        reason "from_future"
     └── UnknownCommand           reason "unknown_command"

Pure: no clock (``now`` is a parameter), no disk, no socket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hybridge.core import jws as jose
from hybridge.core.control import MAX_TEXT, ControlError

COMMAND_TYPE = "hybridge-control+jwt"
#: Commands the connector knows. Anything else is refused (and logged) by name.
COMMANDS = frozenset({"refresh_trust", "deregister", "ping", "calendar_users_changed"})
#: A command older than this is refused (seconds); it is delivered within seconds or never.
DEFAULT_COMMAND_MAX_AGE = 300
#: Clock skew tolerated on ``iat`` (seconds), as for manifests.
DEFAULT_MAX_SKEW = 300


class CommandError(ControlError):
    """A signed command was refused."""


class CommandMalformed(CommandError):
    reason = "malformed"


class CommandWrongAlgorithm(CommandError):
    reason = "wrong_algorithm"


class CommandBadSignature(CommandError):
    reason = "bad_signature"


class CommandWrongAudience(CommandError):
    reason = "wrong_audience"


class CommandReplayed(CommandError):
    reason = "replayed"


class CommandExpired(CommandError):
    reason = "expired"


class CommandFromFuture(CommandError):
    reason = "from_future"


class UnknownCommand(CommandError):
    reason = "unknown_command"


_ERRORS = jose.JwsErrors(
    malformed=CommandMalformed,
    wrong_algorithm=CommandWrongAlgorithm,
    bad_signature=CommandBadSignature,
)
#: Largest command token accepted (bytes): commands carry ids and a few arguments.
MAX_COMMAND_BYTES = 16 * 1024


@dataclass(frozen=True)
class Command:
    """One command for one connector: ``name`` in ``COMMANDS``, ``command_id`` growing."""

    issuer: str
    audience: str
    command_id: int
    name: str
    issued_at: int
    args: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise CommandMalformed(f"issuer must be a non-empty string, got {self.issuer!r}")
        if not isinstance(self.audience, str) or not self.audience:
            raise CommandMalformed(f"audience must be a non-empty string, got {self.audience!r}")
        if type(self.command_id) is not int or self.command_id < 1:
            raise CommandMalformed(f"command id must be an integer >= 1, got {self.command_id!r}")
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 64:
            raise CommandMalformed(f"command name must be 1..64 characters, got {self.name!r}")
        if type(self.issued_at) is not int or self.issued_at < 0:
            raise CommandMalformed(f"issued_at must be unix seconds, got {self.issued_at!r}")
        if not isinstance(self.args, dict) or len(self.args) > 16:
            raise CommandMalformed("args must be an object of at most 16 members")
        for key, value in self.args.items():
            if not isinstance(key, str) or not isinstance(value, str) or len(value) > MAX_TEXT:
                raise CommandMalformed(f"arg {key!r} must be a string of at most {MAX_TEXT}")


_COMMAND_KEYS = frozenset({"iss", "aud", "cid", "cmd", "iat", "args"})


def sign_command(command: Command, private_key: Ed25519PrivateKey) -> str:
    """The compact JWS of ``command`` signed by ``private_key`` (the list-signing key)."""
    payload: dict[str, Any] = {
        "iss": command.issuer,
        "aud": command.audience,
        "cid": command.command_id,
        "cmd": command.name,
        "iat": command.issued_at,
    }
    if command.args:
        payload["args"] = command.args
    return jose.sign(payload, private_key, typ=COMMAND_TYPE)


def _decode_command(raw: bytes) -> Command:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandMalformed(f"command payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CommandMalformed("command payload must be a JSON object")
    unknown = set(data) - _COMMAND_KEYS
    if unknown:
        raise CommandMalformed(f"unknown command members {sorted(unknown)!r}")
    missing = {"iss", "aud", "cid", "cmd", "iat"} - set(data)
    if missing:
        raise CommandMalformed(f"command lacks {sorted(missing)!r}")
    return Command(
        issuer=data["iss"],
        audience=data["aud"],
        command_id=data["cid"],
        name=data["cmd"],
        issued_at=data["iat"],
        args=data.get("args", {}),
    )


def verify_command(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    now: datetime,
    audience: str,
    last_command_id: int | None,
    max_age: int = DEFAULT_COMMAND_MAX_AGE,
    max_skew: int = DEFAULT_MAX_SKEW,
) -> Command:
    """Check a command token and return the command.

    Checks, in order: JWS shape and header (EdDSA only, our ``typ``, no key-choosing
    header); the signature; the payload schema; the audience (required, must equal
    ``audience``); ``iat`` neither ahead of ``now + max_skew`` nor older than ``max_age``;
    the command id above ``last_command_id``; the command name among ``COMMANDS``. The
    name comes last so that an unknown command is reported only when it is otherwise
    authentic (a forged one is reported as a forgery).

    Raises:
        CommandMalformed, CommandWrongAlgorithm, CommandBadSignature, CommandWrongAudience,
        CommandFromFuture, CommandExpired, CommandReplayed, UnknownCommand.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    payload = jose.open_verified(
        token,
        public_key,
        typ=COMMAND_TYPE,
        max_payload=MAX_COMMAND_BYTES,
        errors=_ERRORS,
        what="command",
    )
    command = _decode_command(payload)
    if command.audience != audience:
        raise CommandWrongAudience(
            f"command addressed to {command.audience!r}, this connector is {audience!r}"
        )
    now_seconds = int(now.timestamp())
    if command.issued_at > now_seconds + max_skew:
        raise CommandFromFuture(
            f"command issued {command.issued_at - now_seconds}s ahead of this clock; "
            f"at most {max_skew}s accepted"
        )
    if command.issued_at < now_seconds - max_age:
        raise CommandExpired(
            f"command issued {now_seconds - command.issued_at}s ago; at most {max_age}s accepted"
        )
    # Replay protection: each command id is used once, in increasing order.
    if last_command_id is not None and command.command_id <= last_command_id:
        raise CommandReplayed(
            f"command id {command.command_id!r} is not above the last seen {last_command_id!r}"
        )
    if command.name not in COMMANDS:
        raise UnknownCommand(f"unknown command {command.name!r}; accepted: {sorted(COMMANDS)!r}")
    return command
