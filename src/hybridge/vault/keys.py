"""Where the master key comes from: a key file, an environment variable, or a command.

The master key never enters the database. Three sources, chosen by the environment:

1. ``HYBRIDGE_MASTER_KEY_COMMAND``: a command (split like a shell would, run *without* a
   shell, bounded by a timeout) that prints the key; this is how an HSM, a KMS or a secrets
   manager holds it (``vault kv get -field=key ...``, ``aws kms decrypt ...``).
2. ``HYBRIDGE_MASTER_KEY``: the key itself, for containers whose orchestrator injects it.
3. Otherwise a key file: ``$HYBRIDGE_MASTER_KEY_FILE``, else ``<data_dir>/keys/master.key``;
   its directory is 0700 and the file 0600 (refused when group or others can read it, as
   OpenSSH refuses an exposed private key).

Setting both 1 and 2 is refused: which key wins must never be a guess. Every form holds the
32-byte key as one line of standard base64.
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from hybridge.vault.envelope import KEY_BYTES, key_id, new_key
from hybridge.vault.errors import (
    MasterKeyError,
    MasterKeyInvalidError,
    MasterKeyNotFoundError,
)
from hybridge.vault.secret import Secret

KEY_ENV = "HYBRIDGE_MASTER_KEY"
KEY_COMMAND_ENV = "HYBRIDGE_MASTER_KEY_COMMAND"
KEY_FILE_ENV = "HYBRIDGE_MASTER_KEY_FILE"
DEFAULT_KEY_FILE = Path("keys") / "master.key"
COMMAND_TIMEOUT_SECONDS = 30.0
# A base64 line of 32 bytes is 44 characters; anything far longer is not our key.
_MAX_KEY_TEXT = 4096

SourceKind = Literal["file", "env", "command"]


@dataclass(frozen=True)
class MasterKey:
    """A loaded master key, its public id and where it came from."""

    material: Secret = field(repr=False)
    key_id: str
    location: str


class MasterKeySource(Protocol):
    """A place the master key is read from."""

    @property
    def kind(self) -> SourceKind: ...

    @property
    def location(self) -> str:
        """Where the key lives, for messages and ``vault status`` (never the key)."""
        ...

    def load(self) -> MasterKey:
        """Read the key. Raises ``MasterKeyNotFoundError`` or ``MasterKeyInvalidError``."""
        ...


def encode_key(material: Secret) -> bytes:
    """The key as it is written to a file or given to an operator: a base64 line."""
    return base64.b64encode(material.reveal()) + b"\n"


def decode_key(text: bytes, location: str) -> MasterKey:
    """Parse a base64 key line read from ``location``.

    Raises:
        MasterKeyInvalidError: not standard base64 of exactly 32 bytes. The message names the
            location and the problem, never the text (it may be the key).
    """
    if len(text) > _MAX_KEY_TEXT:
        raise MasterKeyInvalidError(
            f"the master key from {location} is {len(text)} bytes long; expected one base64 "
            f"line of a {KEY_BYTES}-byte key (44 characters)"
        )
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyInvalidError(
            f"the master key from {location} is not valid base64; expected one base64 line "
            f"of a {KEY_BYTES}-byte key (44 characters)"
        ) from None  # no chaining: the binascii message may quote the input
    if len(raw) != KEY_BYTES:
        raise MasterKeyInvalidError(
            f"the master key from {location} decodes to {len(raw)} bytes; expected "
            f"{KEY_BYTES} (AES-256)"
        )
    material = Secret(raw)
    return MasterKey(material=material, key_id=key_id(material), location=location)


@dataclass(frozen=True)
class KeyFileSource:
    """The master key in a file of its own, outside the database."""

    path: Path

    @property
    def kind(self) -> SourceKind:
        return "file"

    @property
    def location(self) -> str:
        return f"key file {self.path}"

    def exists(self) -> bool:
        """Whether the key file is present (even if unusable)."""
        return self.path.exists() or self.path.is_symlink()

    def load(self) -> MasterKey:
        """Read and check the key file. See :class:`MasterKeySource`."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise MasterKeyNotFoundError(f"the {self.location} does not exist") from None
        except OSError as exc:
            raise MasterKeyNotFoundError(
                f"cannot open the {self.location}: {exc.strerror or exc}"
            ) from exc
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            # Like OpenSSH's "UNPROTECTED PRIVATE KEY FILE": a key others can read is a key
            # that may already be copied; refuse rather than use it silently.
            if info.st_mode & 0o077:
                raise MasterKeyInvalidError(
                    f"the {self.location} has mode {stat.S_IMODE(info.st_mode):04o}; it must "
                    f"not be readable by group or others (chmod 600 {self.path})"
                )
            text = handle.read(_MAX_KEY_TEXT + 1)
        self._check_directory()
        return decode_key(text, self.location)

    def _check_directory(self) -> None:
        # Whoever can write the directory can swap the key file for their own key, and the
        # next secret stored would be readable by them: refuse a group/world-writable one.
        try:
            mode = stat.S_IMODE(self.path.parent.stat().st_mode)
        except OSError as exc:
            raise MasterKeyNotFoundError(
                f"cannot inspect the directory of the {self.location}: {exc.strerror or exc}"
            ) from exc
        if mode & 0o022:
            raise MasterKeyInvalidError(
                f"the directory {self.path.parent} of the master key file has mode "
                f"{mode:04o}; it must not be writable by group or others "
                f"(chmod 700 {self.path.parent})"
            )

    def create(self) -> MasterKey:
        """Write a new random key to the file; never replaces an existing file.

        Raises:
            MasterKeyError: the file exists already, or cannot be written.
        """
        material = new_key()
        write_key_file(self.path, material)
        return MasterKey(material=material, key_id=key_id(material), location=self.location)


def write_key_file(path: Path, material: Secret) -> None:
    """Create ``path`` (0600, in a 0700 directory) holding ``material``, durably.

    ``O_EXCL``: an existing key file is never overwritten, since it may be the only copy of
    the key that opens the vault.

    Raises:
        MasterKeyError: the file exists, or the directory or file cannot be written.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise MasterKeyError(f"refusing to overwrite the existing key file {path}") from None
    except OSError as exc:
        raise MasterKeyError(f"cannot create the key file {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(encode_key(material))
            handle.flush()
            os.fsync(handle.fileno())
        fsync_directory(path.parent)
    except OSError as exc:
        raise MasterKeyError(f"cannot write the key file {path}: {exc.strerror or exc}") from exc


def fsync_directory(directory: Path) -> None:
    """Make a create or rename in ``directory`` durable (POSIX needs the directory synced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class EnvKeySource:
    """The master key in an environment variable, as base64."""

    variable: str = KEY_ENV
    # The mapping holds the key: never part of a repr or a comparison.
    environ: Mapping[str, str] = field(
        default_factory=lambda: os.environ, repr=False, compare=False
    )

    @property
    def kind(self) -> SourceKind:
        return "env"

    @property
    def location(self) -> str:
        return f"environment variable {self.variable}"

    def load(self) -> MasterKey:
        """Read the variable. See :class:`MasterKeySource`."""
        value = self.environ.get(self.variable, "")
        if not value.strip():
            raise MasterKeyNotFoundError(f"the {self.location} is not set or empty")
        return decode_key(value.encode("ascii", "replace"), self.location)


@dataclass(frozen=True)
class CommandKeySource:
    """A command that prints the master key (base64) on stdout."""

    argv: tuple[str, ...]
    timeout: float = COMMAND_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not self.argv or not self.argv[0]:
            raise MasterKeyInvalidError(f"the {KEY_COMMAND_ENV} command is empty")
        if self.timeout <= 0:
            raise MasterKeyInvalidError(f"command timeout must be positive, not {self.timeout!r}")

    @classmethod
    def parse(cls, command: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> CommandKeySource:
        """Split ``command`` with POSIX shell quoting rules (no shell is run).

        Raises:
            MasterKeyInvalidError: the command line does not split (unbalanced quotes).
        """
        try:
            argv = tuple(shlex.split(command))
        except ValueError as exc:
            raise MasterKeyInvalidError(
                f"cannot split the {KEY_COMMAND_ENV} command {command!r}: {exc}"
            ) from exc
        return cls(argv=argv, timeout=timeout)

    @property
    def kind(self) -> SourceKind:
        return "command"

    @property
    def location(self) -> str:
        return f"command {shlex.join(self.argv)!r}"

    def load(self) -> MasterKey:
        """Run the command and read its stdout. See :class:`MasterKeySource`."""
        try:
            # No shell: the argv is run as given. stderr is passed through to our stderr,
            # so the command's own diagnostics reach the admin without entering our messages.
            result = subprocess.run(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise MasterKeyNotFoundError(
                f"the master key {self.location} cannot run: {self.argv[0]!r} not found"
            ) from None
        except subprocess.TimeoutExpired:
            # from None: TimeoutExpired carries the partial stdout, which may be the key.
            raise MasterKeyNotFoundError(
                f"the master key {self.location} did not finish within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            raise MasterKeyNotFoundError(
                f"the master key {self.location} cannot run: {exc.strerror or exc}"
            ) from None
        if result.returncode != 0:
            raise MasterKeyNotFoundError(
                f"the master key {self.location} exited with status {result.returncode}"
            )
        return decode_key(result.stdout, self.location)


def configured_source(
    data_dir: Path, environ: Mapping[str, str] | None = None
) -> KeyFileSource | EnvKeySource | CommandKeySource:
    """The master key source the environment selects (see the module docstring).

    Raises:
        MasterKeyInvalidError: both the variable and the command are set, or the command
            line does not split.
    """
    env = os.environ if environ is None else environ
    command = env.get(KEY_COMMAND_ENV, "").strip()
    direct = env.get(KEY_ENV, "").strip()
    if command and direct:
        raise MasterKeyInvalidError(
            f"both {KEY_ENV} and {KEY_COMMAND_ENV} are set; set only one of them"
        )
    if command:
        return CommandKeySource.parse(command)
    if direct:
        return EnvKeySource(KEY_ENV, env)
    file_override = env.get(KEY_FILE_ENV, "").strip()
    return KeyFileSource(Path(file_override) if file_override else data_dir / DEFAULT_KEY_FILE)
