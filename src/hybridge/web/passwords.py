"""Admin passwords: argon2id hashes (argon2-cffi) and the policy for new ones."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hybridge.web.errors import WeakPassword

#: NIST SP 800-63B §5.1.1.2: at least 8 characters, we ask 12; no composition rules; at
#: most 1024 so that hashing cost stays bounded (argon2 hashes any length, we do not).
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024

# OWASP Password Storage Cheat Sheet, first argon2id configuration: m=46 MiB, t=1, p=1.
# Chosen over argon2-cffi's default (RFC 9106 low-memory: 64 MiB, t=3, p=4) because a
# connector host may have 2 cores: four lanes buy nothing there and a login burst would cost
# >1 s of CPU each. Every parameter is pinned (type included) so a library default change
# cannot weaken it silently; ``needs_rehash`` upgrades stored hashes when these change.
_HASHER = PasswordHasher(time_cost=1, memory_cost=47104, parallelism=1, type=Type.ID)


def check_password_policy(password: str) -> None:
    """Raise ``WeakPassword`` when ``password`` is too short or too long (never quoted)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(
            f"password has {len(password)} characters; at least {MIN_PASSWORD_LENGTH} needed"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"password longer than {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """An argon2id PHC string (``$argon2id$v=19$m=...``) for ``password``."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; a malformed hash counts as no match."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether ``stored_hash`` was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(stored_hash)


#: Verified against when the login is unknown, so both paths cost one argon2 hash
#: (no timing oracle telling which logins exist).
DUMMY_HASH = _HASHER.hash("hybridge-no-such-account")
