"""core.control: frames (round trips, every malformed shape, size bounds) and back-off."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridge.core.control import (
    MAX_CONNECTOR_FRAME,
    Ack,
    Backoff,
    CommandFrame,
    ControlError,
    ControlMalformed,
    FrameTooLarge,
    Heartbeat,
    Hello,
    Pong,
    Push,
    Refusal,
    Resync,
    Welcome,
    decode_cloud_message,
    decode_connector_message,
    encode_message,
)

ME = "7d1c2f9e-0000-4000-8000-000000000001"


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
