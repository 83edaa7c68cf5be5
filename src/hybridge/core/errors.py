"""The root of every exception Hybridge raises on purpose.

Each package defines its own root below this one (``PkiError``, ``TrustStoreError``, ...),
with subclasses that say what went wrong. The CLI and the web layers catch
``HybridgeError`` and show its message as one sentence; anything else is a bug.

    HybridgeError
     ├── PkiError              (core.pki)
     ├── VerificationError     (core.tlsverify)
     ├── SipError              (core.sip)
     ├── StorageError          (storage)
     ├── TrustStoreError       (truststore)
     └── VaultError            (vault)
"""


class HybridgeError(Exception):
    """An error whose message is meant for the admin: one sentence, no secret in it."""

    #: The process exit status a CLI command uses for this error (2: bad usage or input).
    exit_code: int = 2
