"""The root of every exception Hybridge raises on purpose.

Each package defines its own root below this one (``PkiError``, ``TrustStoreError``, ...),
with subclasses that say what went wrong. The CLI and the web layers catch
``HybridgeError`` and show its message as one sentence; anything else is a bug.

    HybridgeError
     ├── PkiError              (core.pki)         certificates that do not load
     ├── VerificationError     (core.tlsverify)   a verification that could not run
     ├── SipError              (core.sip)         SIP over the limits or malformed
     ├── ManifestError         (core.manifest)    a CA-list manifest refused
     ├── ControlError          (core.control)     a control-channel message refused
     ├── StorageError          (storage)
     ├── TrustStoreError       (truststore)
     ├── TlsError              (tls)
     ├── VaultError            (vault)
     ├── CalendarError         (calendar)
     ├── WebError              (web)
     ├── CloudError            (cloud)
     ├── ConnectorError        (connector)
     ├── EdgeError             (edge)
     ├── DemoPkiError          (demo)
     └── EwsEmulatorError      (testing.ews)

A refused peer is not an exception: ``core.tlsverify`` returns a ``Refused`` value and the
caller decides, as a security check should.
"""


class HybridgeError(Exception):
    """An error whose message is meant for the admin: one sentence, no secret in it."""

    #: The process exit status a CLI command uses for this error (2: bad usage or input).
    exit_code: int = 2
