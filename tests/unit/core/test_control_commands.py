"""core.control_commands: signed commands with real Ed25519 keys, and every refusal."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hybridge.core.control_commands import (
    Command,
    CommandBadSignature,
    CommandExpired,
    CommandFromFuture,
    CommandMalformed,
    CommandReplayed,
    CommandWrongAlgorithm,
    CommandWrongAudience,
    UnknownCommand,
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
