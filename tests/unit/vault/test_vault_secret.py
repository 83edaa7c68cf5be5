"""``Secret`` never shows its value: repr, str, format, pickle, copy, hash, errors."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest

from hybridge.vault import Secret

VALUE = b"Tr0ub4dor&3-vault-test"


def test_reveal_gives_the_bytes_back() -> None:
    secret = Secret(VALUE)
    assert secret.reveal() == VALUE
    assert Secret(bytearray(VALUE)).reveal() == VALUE
    assert Secret(memoryview(VALUE)).reveal() == VALUE
    assert Secret.from_text("pässword").reveal() == "pässword".encode()
    assert Secret.from_text("pässword").reveal_text() == "pässword"
    assert len(secret) == len(VALUE)


@pytest.mark.parametrize(
    "render",
    [repr, str, lambda s: f"{s}", lambda s: f"{s!r}", lambda s: f"{s:>40}", lambda s: format(s)],
)
def test_every_text_form_is_masked(render: object) -> None:
    text = render(Secret(VALUE))  # type: ignore[operator]
    assert text.strip() == "Secret(***)"


def test_containers_and_log_records_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(VALUE)
    assert "Tr0ub4dor" not in repr([secret, {"k": secret}])
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").warning("value %s %r", secret, secret)
    assert "Tr0ub4dor" not in caplog.text
    assert "Secret(***)" in caplog.text


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_is_refused(protocol: int) -> None:
    with pytest.raises(TypeError, match=r"^a Secret cannot be pickled or copied$"):
        pickle.dumps(Secret(VALUE), protocol=protocol)


def test_copy_returns_the_same_immutable_object() -> None:
    secret = Secret(VALUE)
    assert copy.copy(secret) is secret
    assert copy.deepcopy({"s": secret})["s"] is secret


def test_immutable() -> None:
    secret = Secret(VALUE)
    with pytest.raises(AttributeError, match=r"^Secret is immutable$"):
        secret._value = b"other"  # type: ignore[misc]
    with pytest.raises(AttributeError, match=r"^Secret is immutable$"):
        del secret._value
    assert secret.reveal() == VALUE


def test_equality_is_by_value_and_unhashable() -> None:
    assert Secret(VALUE) == Secret(VALUE)
    assert Secret(VALUE) != Secret(VALUE + b"x")
    assert Secret(VALUE) != VALUE  # a Secret never equals a bare bytes value
    with pytest.raises(TypeError, match="unhashable"):
        hash(Secret(VALUE))


def test_text_is_refused_without_quoting_it() -> None:
    with pytest.raises(TypeError) as info:
        Secret("Tr0ub4dor&3-vault-test")  # type: ignore[arg-type]
    assert str(info.value) == "Secret holds bytes, not str; use Secret.from_text()"
    with pytest.raises(TypeError, match=r"^Secret.from_text takes str, not bytes$"):
        Secret.from_text(VALUE)  # type: ignore[arg-type]


def test_non_utf8_reveal_text_does_not_quote_or_chain_the_bytes() -> None:
    with pytest.raises(ValueError) as info:
        Secret(b"\xffTr0ub4dor").reveal_text()
    assert str(info.value) == "the secret is not UTF-8 text"
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
