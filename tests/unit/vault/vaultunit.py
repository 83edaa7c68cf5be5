"""Constants shared by the vault's unit tests (a uniquely named module: conftest is not)."""

from __future__ import annotations

from datetime import UTC, datetime

PASSWORD = "Tr0ub4dor&3-vault-test"
FIXED_NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    """The clock of the vault fixture: always ``FIXED_NOW``."""
    return FIXED_NOW
