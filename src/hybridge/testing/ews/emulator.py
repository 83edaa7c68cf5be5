"""``EwsEmulator``: the object tests hold: the HTTPS server plus its store and directory."""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hybridge.testing.ews.config import EmulatorConfig
from hybridge.testing.ews.directory import Directory
from hybridge.testing.ews.ntlm import NtlmAcceptor
from hybridge.testing.ews.server import EwsHttpServer
from hybridge.testing.ews.store import MailboxStore


def _filetime_now() -> int:
    # MS-DTYP FILETIME: 100 ns intervals since 1601-01-01.
    return int((time.time() + 11644473600) * 10_000_000)


class EwsEmulator:
    """An Exchange 2016 EWS endpoint over HTTPS, for tests and the demo.

    ``store`` (mailbox content) and ``directory`` (accounts, impersonation, throttling) are
    the Python API: tests seed and mutate them while clients are connected.
    """

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        cert_file: Path,
        key_file: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        auth_methods: tuple[str, ...] = ("NTLM", "Basic"),
        store: MailboxStore | None = None,
    ) -> None:
        self.config = config
        self.auth_methods = auth_methods
        self.directory = Directory(config)
        self.store = store or MailboxStore()
        for acct in config.accounts:
            if acct.has_mailbox:
                self.store.ensure_mailbox(acct.smtp)
        self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.tls_context.load_cert_chain(str(cert_file), str(key_file))
        pem = Path(cert_file).read_bytes()
        self._cert_der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
        self._httpd = EwsHttpServer((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since the server was created."""
        return self._httpd.accepted

    @property
    def connections_open(self) -> int:
        """TCP connections open right now (pooled, streaming, or being closed)."""
        return self._httpd.open_connections

    @property
    def base_url(self) -> str:
        host = str(self._httpd.server_address[0])
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.port}"

    @property
    def ews_url(self) -> str:
        return f"{self.base_url}/EWS/Exchange.asmx"

    def new_ntlm_acceptor(self) -> NtlmAcceptor:
        directory = self.directory

        def lookup(domain: str, user: str) -> str | None:
            acct = directory.find_logon(domain, user)
            if acct is None or acct.password_expired:
                # An expired password fails NTLM exactly like a wrong one (the DC returns
                # STATUS_PASSWORD_EXPIRED, IIS answers a plain 401).
                return None
            return acct.password

        return NtlmAcceptor(
            lookup,
            netbios_domain=directory.netbios_domain,
            dns_domain=directory.dns_domain,
            computer="EXCH01",
            server_cert_der=self._cert_der,
            filetime_now=_filetime_now(),
        )

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` (blocking)."""
        self._httpd.serve_forever(poll_interval=0.2)

    def start(self) -> EwsEmulator:
        """Serve from a background thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="ews-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end streaming responses, close the socket."""
        self._httpd.stopping.set()
        with self.store.changed:
            self.store.changed.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EwsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
