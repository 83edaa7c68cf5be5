"""An Exchange Web Services emulator: a test tool, not a mail server.

No Exchange server runs in CI or in the demo, so Hybridge's EWS code (through exchangelib,
unmodified) talks to this HTTPS server instead. It follows Microsoft's published EWS schemas
(messages.xsd / types.xsd, SOAP 1.1) and Exchange 2016's observable behaviour for what
Hybridge uses: SOAP and POX Autodiscover, GetFolder, FindFolder, FindItem, GetItem,
CreateItem, UpdateItem, DeleteItem, SyncFolderItems, Subscribe (streaming),
GetStreamingEvents, Unsubscribe, GetUserOofSettings; NTLMv2 and Basic authentication; the
``ExchangeImpersonation`` header checked against ApplicationImpersonation assignments and
their management scope; ``ErrorNonExistentMailbox``; ``ErrorServerBusy`` with
``BackOffMilliseconds``.

    from hybridge.testing.ews import EmulatorConfig, DirectoryAccount, EwsEmulator
    with EwsEmulator(config, cert_file=cert, key_file=key) as ews:
        ews.store.add_calendar_item("alice@contoso.test", subject="1:1", start=..., end=...)
        ews.directory.revoke_impersonation("svc-hybridge")

Or as a process: ``python -m hybridge.testing.ews --port P --cert F --key F --config users.json``.

For benchmarks, ``ews.store.generate_calendar(smtp, GeneratedCalendar(260, first_start))``
gives a mailbox a year of meetings that are built when read and stored only once written.
"""

from hybridge.testing.ews.config import (
    DirectoryAccount,
    EmulatorConfig,
    ImpersonationAssignment,
    ThrottlePolicy,
    config_from_dict,
    load_config,
)
from hybridge.testing.ews.directory import Directory
from hybridge.testing.ews.emulator import EwsEmulator
from hybridge.testing.ews.errors import EmulatorConfigError, EwsEmulatorError, StoreLookupError
from hybridge.testing.ews.generated import GeneratedCalendar
from hybridge.testing.ews.itemblob import Item
from hybridge.testing.ews.mailbox import OofSettings
from hybridge.testing.ews.store import MailboxStore

__all__ = [
    "Directory",
    "DirectoryAccount",
    "EmulatorConfig",
    "EmulatorConfigError",
    "EwsEmulator",
    "EwsEmulatorError",
    "GeneratedCalendar",
    "ImpersonationAssignment",
    "Item",
    "MailboxStore",
    "OofSettings",
    "StoreLookupError",
    "ThrottlePolicy",
    "config_from_dict",
    "load_config",
]
