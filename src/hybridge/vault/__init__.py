"""The connector's credential vault: envelope encryption under a master key kept apart.

Every secret the connector keeps (the Exchange impersonation password, the connector's
private key and machine credential, later ones) is stored by :class:`Vault` as AES-256-GCM
ciphertext under a data key, bound to its record by associated data; the data key is
wrapped (RFC 3394) by a master key that never enters the database (:mod:`.keys`: a key file,
an environment variable or a command). :mod:`.rotation` re-wraps or re-encrypts without
downtime; :mod:`.status` reports without the key. :class:`Secret` carries plaintexts so
that they never print. Errors are in :mod:`.errors`, rooted at :class:`VaultError`.

Modules: ``secret`` (the value type), ``envelope`` (the cryptography), ``keys`` (master key
sources), ``models`` (tables), ``records`` (refs, metadata, validation, audit), ``keyring``
(unwrapping), ``service`` (the vault), ``rotation`` (master key), ``datakey`` (data key),
``status``.
"""

from hybridge.vault.datakey import rotate_data_key
from hybridge.vault.errors import (
    InvalidSecretInputError,
    MasterKeyError,
    MasterKeyInvalidError,
    MasterKeyMismatchError,
    MasterKeyNotFoundError,
    RotationError,
    SecretDecryptionError,
    SecretNotFoundError,
    VaultError,
    VaultNotInitializedError,
)
from hybridge.vault.keys import (
    CommandKeySource,
    EnvKeySource,
    KeyFileSource,
    MasterKey,
    MasterKeySource,
    configured_source,
)
from hybridge.vault.records import SecretMetadata, SecretRef
from hybridge.vault.rotation import RotationResult, finish_rotation, rotate_master_key
from hybridge.vault.secret import Secret
from hybridge.vault.service import Vault
from hybridge.vault.status import VaultStatus, read_status

__all__ = [
    "CommandKeySource",
    "EnvKeySource",
    "InvalidSecretInputError",
    "KeyFileSource",
    "MasterKey",
    "MasterKeyError",
    "MasterKeyInvalidError",
    "MasterKeyMismatchError",
    "MasterKeyNotFoundError",
    "MasterKeySource",
    "RotationError",
    "RotationResult",
    "Secret",
    "SecretDecryptionError",
    "SecretMetadata",
    "SecretNotFoundError",
    "SecretRef",
    "Vault",
    "VaultError",
    "VaultNotInitializedError",
    "VaultStatus",
    "configured_source",
    "finish_rotation",
    "read_status",
    "rotate_data_key",
    "rotate_master_key",
]
