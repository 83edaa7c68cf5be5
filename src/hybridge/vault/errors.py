"""What the vault raises. Messages never contain a secret, a key or a plaintext.

    VaultError                         (root, below HybridgeError)
     ├── MasterKeyError                the master key cannot be used
     │    ├── MasterKeyNotFoundError   its file, variable or command gives nothing
     │    ├── MasterKeyInvalidError    it is not base64 of 32 bytes, or its file is exposed
     │    └── MasterKeyMismatchError   it is not the key this vault's data key is wrapped under
     ├── VaultNotInitializedError      no data key yet (and creating one was not asked for)
     ├── SecretNotFoundError           no secret with that id and purpose
     ├── SecretDecryptionError         a stored record fails authentication (tampered/moved)
     ├── InvalidSecretInputError       a purpose, record id or actor that cannot be stored
     └── RotationError                 a key rotation cannot start or finish

Unlike most Hybridge errors, messages about keys do not quote the offending input with
``{value!r}``: the input *is* the secret. They name where it came from instead.
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class VaultError(HybridgeError):
    """The root of every vault error."""


class MasterKeyError(VaultError):
    """The master key cannot be used to open the vault."""


class MasterKeyNotFoundError(MasterKeyError):
    """The configured source of the master key gives no key (file missing, command failed)."""


class MasterKeyInvalidError(MasterKeyError):
    """The master key is malformed, or its file is readable by others."""


class MasterKeyMismatchError(MasterKeyError):
    """The master key is well formed but is not the one the vault's data key is wrapped under."""


class VaultNotInitializedError(VaultError):
    """The vault has no data key yet."""


class SecretNotFoundError(VaultError):
    """No secret has that id (with that purpose)."""


class SecretDecryptionError(VaultError):
    """A stored secret or wrapped data key fails authentication: altered or moved in the DB."""


class InvalidSecretInputError(VaultError):
    """A purpose, record id, actor or reference that the vault does not accept."""


class RotationError(VaultError):
    """A key rotation cannot start or finish as asked."""
