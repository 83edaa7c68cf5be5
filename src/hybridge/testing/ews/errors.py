"""Errors of the EWS emulator's own API (bad configuration, unknown mailbox or item).

    HybridgeError
     └── EwsEmulatorError
          ├── EmulatorConfigError     a users.json / constructor argument is invalid
          └── StoreLookupError        a mailbox, folder or item named from Python does not exist

Errors sent to EWS clients are not exceptions: they are SOAP faults and ResponseCodes built
by the server (see ``soap.py``).
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class EwsEmulatorError(HybridgeError):
    """Root of the EWS emulator's errors."""


class EmulatorConfigError(EwsEmulatorError):
    """The emulator configuration is invalid; the message names the field and what is accepted."""


class StoreLookupError(EwsEmulatorError):
    """A mailbox, folder or item named by a test does not exist in the store."""
