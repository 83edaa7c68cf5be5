"""argon2id hashing, the password policy, and the throttle's arithmetic."""

from __future__ import annotations

import pytest

from hybridge.web.errors import WeakPassword
from hybridge.web.passwords import (
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from hybridge.web.throttle import ThrottlePolicy


def test_hash_is_argon2id_and_verifies() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=47104,t=1,p=1$")
    assert verify_password(stored, "correct horse battery staple")
    assert not needs_rehash(stored)


def test_wrong_password_malformed_hash_and_huge_input_do_not_verify() -> None:
    stored = hash_password("correct horse battery staple")
    assert not verify_password(stored, "correct horse battery stapl")
    assert not verify_password("$argon2id$garbage", "correct horse battery staple")
    assert not verify_password(stored, "x" * 5000)


def test_weaker_parameters_need_rehash() -> None:
    from argon2 import PasswordHasher, Type

    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID)
    assert needs_rehash(old.hash("correct horse battery staple"))


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "password has 5 characters; at least 12 needed"),
        ("x" * 1025, "password longer than 1024 characters"),
    ],
)
def test_policy_refuses_and_never_quotes_the_password(password: str, message: str) -> None:
    with pytest.raises(WeakPassword) as info:
        check_password_policy(password)
    assert str(info.value) == message


def test_throttle_delay_doubles_then_caps() -> None:
    policy = ThrottlePolicy(account_free_failures=5, base_delay=1, max_delay=60)
    delays = [policy.delay_after(n, 5) for n in range(1, 14)]
    assert delays == [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]
    with pytest.raises(ValueError):
        ThrottlePolicy(base_delay=0)
