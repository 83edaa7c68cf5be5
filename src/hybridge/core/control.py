"""The control channel's messages and signed commands, with no socket in sight.

The connector holds one WebSocket (RFC 6455) to the cloud's ``/control``; every frame is a
text frame holding one JSON object with a ``type``. This module is the whole vocabulary:
``decode_message(text)`` returns a frozen message or raises, ``encode_message(msg)`` returns
the text. Sizes are bounded on both sides (``MAX_CONNECTOR_FRAME`` for what a connector may
send, ``MAX_CLOUD_FRAME`` for what the cloud may send: a push carries a whole manifest).

Connector -> cloud::

    hello      first frame: version, installed CA-list sequence, status, alarms, trust mode
    heartbeat  the same facts, every ``heartbeat_interval`` seconds
    ack        a push applied (``seq``) or a command carried out (``command_id``)
    refusal    a push or a command refused, with the stable ``reason`` and a detail
    pong       the answer to a signed ``ping`` command
    resync     after ``refresh_trust``: "this is my sequence, push if I am behind"

Cloud -> connector::

    welcome    answer to hello: heartbeat interval (the cloud may change it), current sequence
    push       a CA-list manifest (``core.manifest``) signed for this connector (``aud``)
    command    a signed command token (below)

The ``command`` frame carries a signed command: see ``core.control_commands`` (compact JWS
like the manifests, one connector per command, a growing command id against replays).
``Backoff`` is the reconnect schedule both ends agree on.

Errors (``reason`` is what a connector reports back in a ``refusal``)::

    ControlError                        (HybridgeError)
     ├── ControlMalformed               reason "malformed": not JSON, unknown type, bad field
     ├── FrameTooLarge                  reason "too_large"
     └── CommandError                   a signed command refused (core.control_commands)

Pure: no clock (``now`` is a parameter), no disk, no socket.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

from hybridge.core.errors import HybridgeError
from hybridge.core.manifest import MAX_PAYLOAD_BYTES

#: What a connector may send in one frame: its frames are small facts. 64 KiB is the
#: default frame limit of nginx's and HAProxy's WebSocket proxies' buffers (order of).
MAX_CONNECTOR_FRAME = 64 * 1024
#: What the cloud may send in one frame: a push carries a manifest (``MAX_PAYLOAD_BYTES``
#: of base64url), plus the JSON envelope.
MAX_CLOUD_FRAME = MAX_PAYLOAD_BYTES + 64 * 1024
MAX_ALARMS = 32
MAX_TEXT = 500
#: Heartbeat interval bounds the cloud may set (seconds).
MIN_HEARTBEAT = 1
MAX_HEARTBEAT = 3600
STATUSES = frozenset({"ok", "degraded", "error"})
TRUST_MODES = frozenset({"auto", "manual"})


class ControlError(HybridgeError):
    """A control-channel frame or command was refused; ``reason`` is one stable word."""

    reason: ClassVar[str] = "malformed"


class ControlMalformed(ControlError):
    """Not a JSON object of a known ``type`` with the fields that type requires."""

    reason = "malformed"


class FrameTooLarge(ControlError):
    """A frame above the size accepted from that side."""

    reason = "too_large"


# -- value checks ---------------------------------------------------------------------


def _text(name: str, value: object, *, limit: int = MAX_TEXT, empty: bool = False) -> None:
    if not isinstance(value, str) or (not empty and not value) or len(value) > limit:
        raise ControlMalformed(
            f"{name} must be a string of 1..{limit} characters, got {str(value)[:80]!r}"
        )


def _sequence(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    # bool is an int in Python; a JSON true must not pass for sequence 1.
    if type(value) is not int or value < 0 or value >= 2**63:
        raise ControlMalformed(f"{name} must be an integer in 0..2**63-1, got {value!r}")


def _alarms(value: object) -> None:
    if not isinstance(value, tuple) or len(value) > MAX_ALARMS:
        raise ControlMalformed(f"alarms must be a list of at most {MAX_ALARMS} strings")
    for alarm in value:
        _text("alarm", alarm)


# -- messages -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """The connector's first frame. Its identity is its TLS client certificate, not a field."""

    TYPE: ClassVar[str] = "hello"
    version: str
    installed_seq: int | None
    status: str = "ok"
    alarms: tuple[str, ...] = ()
    trust_mode: str = "auto"

    def __post_init__(self) -> None:
        _text("version", self.version, limit=64)
        _sequence("installed_seq", self.installed_seq, optional=True)
        if self.status not in STATUSES:
            raise ControlMalformed(f"status {self.status!r}; one of {sorted(STATUSES)!r}")
        _alarms(self.alarms)
        if self.trust_mode not in TRUST_MODES:
            raise ControlMalformed(f"trust_mode {self.trust_mode!r}; 'auto' or 'manual'")


@dataclass(frozen=True)
class Heartbeat:
    """The connector's periodic report."""

    TYPE: ClassVar[str] = "heartbeat"
    version: str
    installed_seq: int | None
    status: str = "ok"
    alarms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _text("version", self.version, limit=64)
        _sequence("installed_seq", self.installed_seq, optional=True)
        if self.status not in STATUSES:
            raise ControlMalformed(f"status {self.status!r}; one of {sorted(STATUSES)!r}")
        _alarms(self.alarms)


@dataclass(frozen=True)
class Ack:
    """A push applied (``seq``) or a command carried out (``command_id``): exactly one."""

    TYPE: ClassVar[str] = "ack"
    seq: int | None = None
    command_id: int | None = None

    def __post_init__(self) -> None:
        _sequence("seq", self.seq, optional=True)
        _sequence("command_id", self.command_id, optional=True)
        if (self.seq is None) == (self.command_id is None):
            raise ControlMalformed("an ack names exactly one of seq and command_id")


@dataclass(frozen=True)
class Refusal:
    """A push (``of="push"``) or a command (``of="command"``) refused, with its reason."""

    TYPE: ClassVar[str] = "refusal"
    of: str
    reason: str
    detail: str = ""
    seq: int | None = None
    command_id: int | None = None

    def __post_init__(self) -> None:
        if self.of not in ("push", "command"):
            raise ControlMalformed(f"refusal of {self.of!r}; 'push' or 'command'")
        _text("reason", self.reason, limit=64)
        _text("detail", self.detail, limit=2000, empty=True)
        _sequence("seq", self.seq, optional=True)
        _sequence("command_id", self.command_id, optional=True)


@dataclass(frozen=True)
class Pong:
    TYPE: ClassVar[str] = "pong"
    command_id: int

    def __post_init__(self) -> None:
        _sequence("command_id", self.command_id, optional=False)


@dataclass(frozen=True)
class Resync:
    """After ``refresh_trust``: the connector's sequence; the cloud pushes if it is behind."""

    TYPE: ClassVar[str] = "resync"
    installed_seq: int | None

    def __post_init__(self) -> None:
        _sequence("installed_seq", self.installed_seq, optional=True)


@dataclass(frozen=True)
class Welcome:
    TYPE: ClassVar[str] = "welcome"
    heartbeat_interval: int
    current_seq: int | None
    connector_id: str

    def __post_init__(self) -> None:
        if type(self.heartbeat_interval) is not int or not (
            MIN_HEARTBEAT <= self.heartbeat_interval <= MAX_HEARTBEAT
        ):
            raise ControlMalformed(
                f"heartbeat_interval {self.heartbeat_interval!r}; "
                f"an integer in {MIN_HEARTBEAT}..{MAX_HEARTBEAT}"
            )
        _sequence("current_seq", self.current_seq, optional=True)
        _text("connector_id", self.connector_id, limit=64)


@dataclass(frozen=True)
class Push:
    """A CA-list manifest (compact JWS); ``core.manifest.verify_manifest`` judges it."""

    TYPE: ClassVar[str] = "push"
    manifest: str

    def __post_init__(self) -> None:
        _text("manifest", self.manifest, limit=MAX_CLOUD_FRAME)


@dataclass(frozen=True)
class CommandFrame:
    """A signed command token; ``verify_command`` judges it."""

    TYPE: ClassVar[str] = "command"
    token: str

    def __post_init__(self) -> None:
        _text("token", self.token, limit=16 * 1024)


ConnectorMessage = Hello | Heartbeat | Ack | Refusal | Pong | Resync
CloudMessage = Welcome | Push | CommandFrame
Message = ConnectorMessage | CloudMessage

_CONNECTOR_TYPES: dict[str, type[Any]] = {
    cls.TYPE: cls for cls in (Hello, Heartbeat, Ack, Refusal, Pong, Resync)
}
_CLOUD_TYPES: dict[str, type[Any]] = {cls.TYPE: cls for cls in (Welcome, Push, CommandFrame)}
_TUPLE_FIELDS = frozenset({"alarms"})


def encode_message(message: Message) -> str:
    """The JSON text of ``message`` (``type`` first, absent optional members left out)."""
    body: dict[str, Any] = {"type": message.TYPE}
    defaults = {f.name: f.default for f in fields(message)}
    for name, value in message.__dict__.items():
        # Optional members are left out when absent; a required one may be null.
        if value is None and defaults.get(name, MISSING) is None:
            continue
        body[name] = list(value) if name in _TUPLE_FIELDS else value
    return json.dumps(body, separators=(",", ":"))


def _decode(text: str | bytes, types: dict[str, type[Any]], limit: int) -> Any:
    if len(text) > limit:
        raise FrameTooLarge(f"frame of {len(text)} bytes; at most {limit} accepted")
    if isinstance(text, bytes):
        # RFC 6455 §5.6: we use text frames; a binary frame is not part of this protocol.
        raise ControlMalformed("binary frame; the control channel uses text frames only")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ControlMalformed(f"frame is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlMalformed(f"frame must be a JSON object, got {type(data).__name__}")
    kind = data.pop("type", None)
    cls = types.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ControlMalformed(f"unknown frame type {kind!r}; accepted: {sorted(types)!r}")
    known = {name for name in cls.__dataclass_fields__ if name != "TYPE"}
    unknown = set(data) - known
    if unknown:
        raise ControlMalformed(
            f"{kind} frame has unknown members {sorted(unknown)!r}; accepted: {sorted(known)!r}"
        )
    if "alarms" in data:
        if not isinstance(data["alarms"], list):
            raise ControlMalformed("alarms must be a list of strings")
        data["alarms"] = tuple(data["alarms"])
    try:
        return cls(**data)
    except TypeError as exc:  # a required member is missing
        raise ControlMalformed(f"{kind} frame: {exc}") from exc


def decode_connector_message(text: str | bytes) -> ConnectorMessage:
    """Parse a frame a connector sent (what the cloud reads).

    Raises:
        FrameTooLarge: above ``MAX_CONNECTOR_FRAME``.
        ControlMalformed: not a JSON object of a connector frame type with valid fields.
    """
    message: ConnectorMessage = _decode(text, _CONNECTOR_TYPES, MAX_CONNECTOR_FRAME)
    return message


def decode_cloud_message(text: str | bytes) -> CloudMessage:
    """Parse a frame the cloud sent (what a connector reads).

    Raises:
        FrameTooLarge: above ``MAX_CLOUD_FRAME``.
        ControlMalformed: not a JSON object of a cloud frame type with valid fields.
    """
    message: CloudMessage = _decode(text, _CLOUD_TYPES, MAX_CLOUD_FRAME)
    return message


# -- reconnect back-off ---------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Capped exponential back-off with full jitter (AWS Architecture Blog, "Exponential
    Backoff And Jitter", 2015): attempt ``n`` waits ``uniform(0, min(cap, base * 2**n))``.

    Full jitter spreads a crowd of connectors that lost the cloud at the same instant, so
    they do not all come back in the same second. ``random`` is a parameter (pure).
    """

    base: float = 1.0
    cap: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"back-off base {self.base!r} must be in (0, cap={self.cap!r}]")

    def ceiling(self, attempt: int) -> float:
        """The largest wait of ``attempt`` (0-based)."""
        return min(self.cap, self.base * 2.0 ** min(attempt, 62))

    def delay(self, attempt: int, random: float) -> float:
        """The wait before ``attempt`` given ``random`` drawn uniformly from [0, 1)."""
        if not 0 <= random < 1:
            raise ValueError(f"random {random!r} must be in [0, 1)")
        return self.ceiling(attempt) * random
