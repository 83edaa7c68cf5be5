"""exchangelib plumbing: our TLS context per configuration, no process-wide state.

exchangelib (unmodified) talks through requests, and chooses its HTTP adapter with the
class attribute ``BaseProtocol.HTTP_ADAPTER_CLS``. Setting that attribute would change every
Exchange configuration in the process, and exchangelib also caches ``Protocol`` objects per
(endpoint, credentials) in a process-wide dict. So each configuration gets:

- an adapter class closed over *its* ``ssl.SSLContext`` (built from the platform trust
  store, never the bootstrap set), which also stops requests from pointing urllib3 at certifi
  or ``REQUESTS_CA_BUNDLE`` — urllib3 would load those roots *into our context*;
- a ``Protocol`` subclass using that adapter, whose metaclass skips exchangelib's cache, so
  no other configuration can be handed this one's sessions (or its password).

``account_for`` builds an impersonating ``Account`` on top; ``autodiscover_protocol`` does the
same for SOAP Autodiscover.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import Any

import requests.adapters
import requests.utils
from exchangelib import IMPERSONATION, UTC, Account, Configuration, Credentials
from exchangelib.autodiscover.protocol import AutodiscoverProtocol
from exchangelib.protocol import CachingProtocol, FailFast, Protocol

_AUTH = {"NTLM": "NTLM", "Basic": "basic"}


def _cert_reqs(context: ssl.SSLContext) -> str:
    return "CERT_REQUIRED" if context.verify_mode == ssl.CERT_REQUIRED else "CERT_NONE"


#: How much of an already-read answer one ``iter_content()`` step hands to the XML parser.
READ_CHUNK = 64 * 1024


class _ReadResponse(requests.Response):
    """A ``requests.Response`` whose ``iter_content()`` of a body already read is chunked.

    exchangelib parses every non-streaming answer through ``response.iter_content()`` with
    requests' default ``chunk_size=1``: one generator step and one ``bytearray.extend`` per
    byte, which for a 512-item SyncFolderItems page (~0.5 MB) cost more CPU than parsing
    it. Streaming answers (GetStreamingEvents, whose body is not read yet) keep the
    byte-at-a-time default, so a notification is parsed the moment it arrives.
    """

    def iter_content(self, chunk_size: int | None = 1, decode_unicode: bool = False) -> Any:
        if chunk_size == 1 and self._content_consumed and not decode_unicode:
            chunk_size = READ_CHUNK
        return super().iter_content(chunk_size, decode_unicode)  # type: ignore[call-overload]


def adapter_class(context: ssl.SSLContext) -> type[requests.adapters.HTTPAdapter]:
    """An HTTPAdapter class whose connections use ``context`` and nothing else."""

    class AnchoredAdapter(requests.adapters.HTTPAdapter):  # type: ignore[misc, unused-ignore]
        def build_response(self, req: Any, resp: Any) -> requests.Response:
            response = super().build_response(req, resp)
            response.__class__ = _ReadResponse  # same object, same state: one method differs
            return response

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = context
            super().init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            kwargs["ssl_context"] = context
            return super().proxy_manager_for(proxy, **kwargs)

        def build_connection_pool_key_attributes(
            self, request: Any, verify: Any, cert: Any = None
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(
                request, True, cert
            )
            # urllib3 would load a CA path given here into *our* context (adding certifi's
            # or REQUESTS_CA_BUNDLE's roots), and sets the context's verify_mode from
            # cert_reqs: both must come from the context we were given.
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["cert_reqs"] = _cert_reqs(context)
            return host_params, pool_kwargs

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            super().cert_verify(conn, url, False, cert)
            conn.cert_reqs = _cert_reqs(context)
            conn.ca_certs = None
            conn.ca_cert_dir = None

    return AnchoredAdapter


class _UncachedProtocolMeta(CachingProtocol):  # type: ignore[misc, unused-ignore]
    """exchangelib's Protocol metaclass without its process-wide instance cache."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class _EnvironmentReadOnceProtocol(Protocol, metaclass=_UncachedProtocolMeta):  # type: ignore[misc]
    """A Protocol whose sessions read the proxy environment once, not on every request.

    With ``trust_env`` a requests session re-reads ``*_PROXY``/``NO_PROXY`` (walking
    ``os.environ``), ``.netrc`` and the CA-bundle variables on every call: ~1.5 ms of CPU
    per EWS request. A session only ever posts to the protocol's one endpoint, so the
    proxies for that URL are computed when the session is made and the rest is off: the
    adapter ignores CA bundles (our context decides) and exchangelib sets the auth, so
    ``.netrc`` could only ever have injected credentials.
    """

    @classmethod
    def raw_session(cls, prefix: str, *args: Any, **kwargs: Any) -> Any:
        session = super().raw_session(prefix, *args, **kwargs)
        session.proxies.update(requests.utils.get_environ_proxies(prefix))
        session.trust_env = False
        return session


def protocol_class(context: ssl.SSLContext, timeout: float) -> type[Protocol]:
    """A ``Protocol`` subclass bound to ``context``; each call gives a fresh class."""
    return _UncachedProtocolMeta(
        "AnchoredProtocol",
        (_EnvironmentReadOnceProtocol,),
        {"HTTP_ADAPTER_CLS": adapter_class(context), "TIMEOUT": timeout, "RETRY_WAIT": 1},
    )


def autodiscover_protocol(
    url: str,
    credentials: Credentials,
    auth: str,
    context: ssl.SSLContext,
    timeout: float,
) -> AutodiscoverProtocol:
    """An exchangelib AutodiscoverProtocol for ``url`` using ``context`` (fail-fast)."""
    cls = type(
        "AnchoredAutodiscoverProtocol",
        (AutodiscoverProtocol,),
        {"HTTP_ADAPTER_CLS": adapter_class(context), "TIMEOUT": timeout},
    )
    config = Configuration(
        service_endpoint=url,
        credentials=credentials,
        auth_type=_AUTH[auth],
        retry_policy=FailFast(),
    )
    return cls(config=config)


def account_for(
    ews_url: str,
    mailbox: str,
    credentials: Credentials,
    auth: str,
    context: ssl.SSLContext,
    timeout: float,
) -> Account:
    """An ``Account`` for ``mailbox`` through ``ExchangeImpersonation``, over ``context``.

    No network I/O happens here; the first EWS call negotiates version and authentication.
    """
    config = Configuration(
        service_endpoint=ews_url,
        credentials=credentials,
        auth_type=_AUTH[auth],
        retry_policy=FailFast(),
    )
    account = Account(
        primary_smtp_address=mailbox,
        config=config,
        autodiscover=False,
        access_type=IMPERSONATION,
        default_timezone=UTC,
    )
    # Account() always goes through exchangelib's cached Protocol; replace it with ours and
    # drop the cache entry so the credentials do not linger in a process-wide dict.
    account.protocol = protocol_class(context, timeout)(config=config)
    with contextlib.suppress(KeyError):
        del Protocol[config]
    return account


class _RedactAuthorization(logging.Filter):
    """Masks ``Authorization`` headers in exchangelib's DEBUG request dumps.

    exchangelib.util logs the request headers of every call at DEBUG; with Basic auth that
    header is the password in base64. Never log a secret (DESIGN §3.5).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict):
            record.args = {k: _redact(v) for k, v in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(_redact(v) for v in args)
        return True


def _redact(value: object) -> object:
    if hasattr(value, "items") and not isinstance(value, str | bytes):
        try:
            return {
                k: ("********" if str(k).lower() in ("authorization", "cookie") else v)
                for k, v in value.items()
            }
        except Exception:  # a mapping that cannot be iterated is logged as it is
            return value
    return value


def install_log_redaction() -> None:
    """Attach the Authorization-masking filter to exchangelib's loggers (idempotent)."""
    for name in ("exchangelib.util", "exchangelib.util.xml"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactAuthorization) for f in logger.filters):
            logger.addFilter(_RedactAuthorization())
