"""GraphSettings and ClientCertificate: validated on construction, the credential never
shown."""

from __future__ import annotations

from typing import Any

import pytest
import trustme

from hybridge.calendar.errors import CalendarSettingsError
from hybridge.calendar.graph import ClientCertificate, GraphSettings
from hybridge.vault.secret import Secret

TENANT = "8F6B2C1E-3D4A-4B5C-9E7F-0A1B2C3D4E5F"
CLIENT = "3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c"
SECRET_TEXT = "Sup3r~Secret.Value"


def settings(**overrides: Any) -> GraphSettings:
    kw: dict[str, Any] = {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "test_mailbox": "room1@contoso.test",
        "client_secret": Secret.from_text(SECRET_TEXT),
    }
    kw.update(overrides)
    return GraphSettings(**kw)


def test_defaults_point_at_the_global_cloud_and_ids_are_lower_case() -> None:
    s = settings()
    assert s.authority == f"https://login.microsoftonline.com/{TENANT.lower()}"
    assert s.graph_url == "https://graph.microsoft.com/v1.0"


def test_the_secret_is_never_in_repr_or_str() -> None:
    s = settings()
    assert SECRET_TEXT not in repr(s) and SECRET_TEXT not in str(s)
    assert SECRET_TEXT not in f"{s}"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"tenant_id": "contoso.onmicrosoft.com"}, "tenant_id 'contoso.onmicrosoft.com' must be"),
        ({"client_id": "hybridge"}, "client_id 'hybridge' must be"),
        ({"test_mailbox": "room1"}, "test_mailbox 'room1' is not an address"),
        ({"client_secret": None}, "exactly one of client_secret and certificate"),
        ({"client_secret": Secret.from_text("")}, "client_secret must not be empty"),
        ({"authority_host": "http://login.example"}, "authority_host 'http://login.example'"),
        ({"graph_url": "https://graph.example/v1.0?x=1"}, "graph_url .* no query"),
        ({"window_future_days": 3}, r"window_future_days 3 must be in \[7, 1825\]"),
        ({"window_past_days": -1}, r"window_past_days -1 must be in \[0, 365\]"),
        ({"timeout_seconds": 0}, r"timeout_seconds 0 must be in \(0, 300\]"),
    ],
)
def test_invalid_settings_name_the_field(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(CalendarSettingsError, match=match):
        settings(**overrides)


@pytest.fixture(scope="module")
def rsa_ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.RSA)


def test_rsa_certificate_credential_is_accepted(rsa_ca: trustme.CA) -> None:
    leaf = rsa_ca.issue_cert("app", key_type=trustme.KeyType.RSA)
    cert = ClientCertificate(Secret(leaf.private_key_pem.bytes()), leaf.cert_chain_pems[0].bytes())
    s = settings(client_secret=None, certificate=cert)
    assert "PRIVATE KEY" not in repr(s) and "PRIVATE KEY" not in repr(cert)


def test_ec_certificate_credential_is_refused() -> None:
    # Entra ID signs-in apps with RSA certificates only.
    leaf = trustme.CA().issue_cert("app")
    with pytest.raises(CalendarSettingsError, match="RSA key of at least 2048 bits"):
        ClientCertificate(Secret(leaf.private_key_pem.bytes()), leaf.cert_chain_pems[0].bytes())


def test_key_of_another_certificate_is_refused(rsa_ca: trustme.CA) -> None:
    one = rsa_ca.issue_cert("one", key_type=trustme.KeyType.RSA)
    two = rsa_ca.issue_cert("two", key_type=trustme.KeyType.RSA)
    with pytest.raises(CalendarSettingsError, match="does not belong to the certificate"):
        ClientCertificate(Secret(one.private_key_pem.bytes()), two.cert_chain_pems[0].bytes())


def test_garbage_key_is_refused_without_echoing_it(rsa_ca: trustme.CA) -> None:
    leaf = rsa_ca.issue_cert("app", key_type=trustme.KeyType.RSA)
    junk = b"-----BEGIN PRIVATE KEY-----\nTOP-SECRET-JUNK\n-----END PRIVATE KEY-----\n"
    with pytest.raises(CalendarSettingsError, match="unencrypted PEM private key") as caught:
        ClientCertificate(Secret(junk), leaf.cert_chain_pems[0].bytes())
    assert "TOP-SECRET-JUNK" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
