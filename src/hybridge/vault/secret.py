"""``Secret``: bytes that never show themselves.

Every path by which a value ends up in text is closed: ``repr``, ``str``, ``format`` and
f-strings give ``Secret(***)``; pickling and copying through ``__reduce__`` raise, so a
secret cannot leave the process inside a cache, a crash dump or a multiprocessing queue.
The one way out is :meth:`Secret.reveal`, which makes every use of the plaintext greppable.

This is a guard against accidents (logs, tracebacks, templates), not against code running in
the same process, which can always read memory.
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn, final

_MASK = "Secret(***)"


@final
class Secret:
    """An immutable byte string whose value is shown only by :meth:`reveal`."""

    __slots__ = ("_value",)
    _value: bytes

    def __init__(self, value: bytes | bytearray | memoryview) -> None:
        """Wrap ``value`` (copied). Raises ``TypeError`` for anything but bytes-like."""
        if not isinstance(value, bytes | bytearray | memoryview):
            # The message names the type only: the value may be the secret as text.
            raise TypeError(
                f"Secret holds bytes, not {type(value).__name__}; use Secret.from_text()"
            )
        object.__setattr__(self, "_value", bytes(value))

    @classmethod
    def from_text(cls, text: str) -> Secret:
        """A secret holding ``text`` encoded as UTF-8."""
        if not isinstance(text, str):
            raise TypeError(f"Secret.from_text takes str, not {type(text).__name__}")
        return cls(text.encode("utf-8"))

    def reveal(self) -> bytes:
        """The plaintext. Every caller of this method is a place where the secret is used."""
        return self._value

    def reveal_text(self) -> str:
        """The plaintext decoded as UTF-8. Raises ``ValueError`` (without the bytes) if not text."""
        try:
            text: str | None = self._value.decode("utf-8")
        except UnicodeDecodeError:
            # Raised outside the handler: UnicodeDecodeError.object holds the secret's bytes,
            # and chaining would keep it alive in __context__ and print it in tracebacks.
            text = None
        if text is None:
            raise ValueError("the secret is not UTF-8 text")
        return text

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, so that comparing a guess does not leak a prefix through timing.
        return hmac.compare_digest(self._value, other._value)

    # A hash of a low-entropy secret (a password) is a guessing oracle: not hashable.
    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        # Pickle, copy and deepcopy all go through here: a secret never leaves serialized.
        raise TypeError("a Secret cannot be pickled or copied")

    def __copy__(self) -> Secret:
        return self  # immutable: the same object is a faithful copy, nothing is serialized

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self
