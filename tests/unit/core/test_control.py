"""core.control: frames, signed commands and back-off, with real Ed25519 keys."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from hybridge.core.control import (
    MAX_CONNECTOR_FRAME,
    Ack,
    Backoff,
    Command,
    CommandBadSignature,
    CommandExpired,
    CommandFrame,
    CommandFromFuture,
    CommandMalformed,
    CommandReplayed,
    CommandWrongAlgorithm,
    CommandWrongAudience,
    ControlError,
    ControlMalformed,
    FrameTooLarge,
    Heartbeat,
    Hello,
    Pong,
    Push,
    Refusal,
    Resync,
    UnknownCommand,
    Welcome,
    decode_cloud_message,
    decode_connector_message,
    encode_message,
    sign_command,
    verify_command,
)
from hybridge.core.manifest import CaListManifest, sign_manifest

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
T = int(NOW.timestamp())
KEY = Ed25519PrivateKey.generate()
ME = "7d1c2f9e-0000-4000-8000-000000000001"


def command(name: str = "ping", command_id: int = 1, **kwargs: object) -> Command:
    values: dict[str, object] = {
        "issuer": "https://cloud.test",
        "audience": ME,
        "command_id": command_id,
        "name": name,
        "issued_at": T,
    }
    values.update(kwargs)
    return Command(**values)  # type: ignore[arg-type]


def verify(token: str, last: int | None = None, **kwargs: object) -> Command:
    return verify_command(
        token,
        KEY.public_key(),
        now=kwargs.pop("now", NOW),  # type: ignore[arg-type]
        audience=kwargs.pop("audience", ME),  # type: ignore[arg-type]
        last_command_id=last,
    )


# -- frames -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        Hello("0.1.0", 3, "ok", ("cloud unreachable for 400s",), "manual"),
        Hello("0.1.0", None),
        Heartbeat("0.1.0", 7, "degraded", ("x",)),
        Ack(seq=4),
        Ack(command_id=9),
        Refusal("push", "stale_sequence", "sequence 1 is not above 2", seq=1),
        Refusal("command", "unknown_command", "nope", command_id=3),
        Pong(5),
        Resync(None),
    ],
)
def test_connector_frames_round_trip(message: object) -> None:
    text = encode_message(message)  # type: ignore[arg-type]
    assert decode_connector_message(text) == message


@pytest.mark.parametrize(
    "message", [Welcome(30, 2, ME), Welcome(1, None, ME), Push("a.b.c"), CommandFrame("a.b.c")]
)
def test_cloud_frames_round_trip(message: object) -> None:
    assert decode_cloud_message(encode_message(message)) == message  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not json", "frame is not JSON"),
        ("[1]", "must be a JSON object, got list"),
        ('{"type":"push","manifest":"x"}', "unknown frame type 'push'"),
        ('{"type":"hello"}', "hello frame: "),
        ('{"type":"hello","version":"1","installed_seq":true}', "installed_seq must be"),
        ('{"type":"hello","version":"1","installed_seq":-1}', "installed_seq must be"),
        ('{"type":"hello","version":"1","installed_seq":1,"x":1}', "unknown members ['x']"),
        ('{"type":"hello","version":"1","installed_seq":1,"status":"fine"}', "status 'fine'"),
        ('{"type":"hello","version":"","installed_seq":1}', "version must be"),
        ('{"type":"heartbeat","version":"1","installed_seq":1,"alarms":"x"}', "alarms must be"),
        ('{"type":"heartbeat","version":"1","installed_seq":1,"alarms":[1]}', "alarm must be"),
        ('{"type":"ack"}', "exactly one of seq and command_id"),
        ('{"type":"ack","seq":1,"command_id":2}', "exactly one of seq and command_id"),
        ('{"type":"refusal","of":"manifest","reason":"x"}', "refusal of 'manifest'"),
        ('{"type":"pong","command_id":"1"}', "command_id must be"),
    ],
)
def test_malformed_connector_frames_are_refused(text: str, words: str) -> None:
    with pytest.raises(ControlMalformed) as caught:
        decode_connector_message(text)
    assert words in str(caught.value)
    assert caught.value.reason == "malformed"


def test_frame_size_is_bounded_before_parsing() -> None:
    big = json.dumps({"type": "heartbeat", "version": "x" * MAX_CONNECTOR_FRAME})
    with pytest.raises(FrameTooLarge) as caught:
        decode_connector_message(big)
    assert caught.value.reason == "too_large"
    assert f"at most {MAX_CONNECTOR_FRAME} accepted" in str(caught.value)


def test_binary_frames_and_too_many_alarms_are_refused() -> None:
    with pytest.raises(ControlMalformed, match="binary frame"):
        decode_connector_message(b'{"type":"pong","command_id":1}')
    with pytest.raises(ControlMalformed, match="at most 32"):
        Heartbeat("1", 1, "ok", tuple(str(i) for i in range(33)))
    with pytest.raises(ControlMalformed, match="heartbeat_interval 0"):
        Welcome(0, None, ME)


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_decoders_raise_only_control_errors(data: str | bytes) -> None:
    for decode in (decode_connector_message, decode_cloud_message):
        with contextlib.suppress(ControlError):
            decode(data)


# -- commands ---------------------------------------------------------------------------


def test_signed_command_verifies() -> None:
    token = sign_command(command("refresh_trust", 4), KEY)
    assert verify(token, last=3) == command("refresh_trust", 4)
    assert verify(token, last=None).command_id == 4


def test_replayed_command_id_is_refused() -> None:
    token = sign_command(command(command_id=4), KEY)
    with pytest.raises(CommandReplayed) as caught:
        verify(token, last=4)
    assert str(caught.value) == "command id 4 is not above the last seen 4"
    with pytest.raises(CommandReplayed):
        verify(token, last=9)


def test_command_for_another_connector_is_refused() -> None:
    token = sign_command(command(audience="someone-else"), KEY)
    with pytest.raises(CommandWrongAudience) as caught:
        verify(token)
    assert str(caught.value) == f"command addressed to 'someone-else', this connector is {ME!r}"


def test_command_signed_by_another_key_is_refused() -> None:
    token = sign_command(command(), Ed25519PrivateKey.generate())
    with pytest.raises(CommandBadSignature, match="does not verify"):
        verify(token)


def test_tampered_command_is_refused() -> None:
    header, payload, signature = sign_command(command("ping"), KEY).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["cmd"] = "deregister"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    with pytest.raises(CommandBadSignature):
        verify(f"{header}.{forged}.{signature}")


def test_unknown_command_is_refused_by_name() -> None:
    token = sign_command(command("format_disk"), KEY)
    with pytest.raises(UnknownCommand) as caught:
        verify(token)
    assert "unknown command 'format_disk'" in str(caught.value)
    assert caught.value.reason == "unknown_command"


def test_expired_and_future_commands_are_refused() -> None:
    old = sign_command(command(issued_at=T - 301), KEY)
    with pytest.raises(CommandExpired, match="301s ago; at most 300s"):
        verify(old)
    ahead = sign_command(command(issued_at=T + 301), KEY)
    with pytest.raises(CommandFromFuture, match="301s ahead"):
        verify(ahead)


def test_manifest_is_not_a_command() -> None:
    # Same key, same algorithm: only the explicit type tells them apart (RFC 8725 §3.11).
    manifest = sign_manifest(CaListManifest("https://cloud.test", 1, T, (b"\x30",), ME), KEY)
    with pytest.raises(CommandMalformed, match="type 'hybridge-ca-list\\+jwt'"):
        verify(manifest)


def test_alg_none_and_hs256_are_refused() -> None:
    def segment(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    payload = segment({"iss": "x", "aud": ME, "cid": 1, "cmd": "ping", "iat": T})
    for alg in ("none", "HS256"):
        token = f"{segment({'alg': alg, 'typ': 'hybridge-control+jwt'})}.{payload}.c2ln"
        with pytest.raises((CommandWrongAlgorithm, CommandMalformed)):
            verify(token)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"command_id": 0}, "command id must be an integer >= 1"),
        ({"command_id": True}, "command id must be an integer >= 1"),
        ({"audience": ""}, "audience must be a non-empty string"),
        ({"name": ""}, "command name must be 1..64"),
        ({"args": {"a": 1}}, "arg 'a' must be a string"),
    ],
)
def test_invalid_commands_cannot_exist(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(CommandMalformed, match=words):
        command(**kwargs)  # type: ignore[arg-type]


# -- back-off ---------------------------------------------------------------------------


def test_backoff_grows_exponentially_to_its_cap_with_full_jitter() -> None:
    backoff = Backoff(base=1.0, cap=60.0)
    assert [backoff.ceiling(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.ceiling(10_000) == 60
    assert backoff.delay(3, 0.0) == 0.0
    assert backoff.delay(3, 0.5) == 4.0
    with pytest.raises(ValueError, match="must be in \\[0, 1\\)"):
        backoff.delay(0, 1.0)
    with pytest.raises(ValueError, match="back-off base 2"):
        Backoff(base=2.0, cap=1.0)
