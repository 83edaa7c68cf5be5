"""Shared certificates for the core.pki tests: built once per run, all real."""

from __future__ import annotations

import pytest

import certs


@pytest.fixture(scope="session")
def root() -> certs.Issued:
    return certs.build("Hybridge Test Root", key_type="rsa", key_size=2048)


@pytest.fixture(scope="session")
def ec_root() -> certs.Issued:
    return certs.build("Hybridge EC Root", key_type="ec", key_size=384, signature_hash="sha384")


@pytest.fixture(scope="session")
def intermediate(root: certs.Issued) -> certs.Issued:
    return certs.build(
        "Hybridge Test Intermediate", issuer=root, key=certs.new_key("ec"), path_length=0
    )


@pytest.fixture(scope="session")
def leaf(intermediate: certs.Issued) -> certs.Issued:
    return certs.build(
        "leaf.example",
        issuer=intermediate,
        key=certs.new_key("ec"),
        is_ca=False,
        san=("leaf.example",),
    )
