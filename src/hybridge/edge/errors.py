"""Errors of ``hybridge.edge``.

    EdgeError                   (HybridgeError) root of this package
     ├── InvalidZone            a zone's fields break a rule (name, subject name, address)
     ├── ZoneNotFound           no zone of that name
     ├── ZoneConflict           the name is taken, or a second traversal zone was asked for
     └── EdgeSetupError         the server cannot start (no zones, no anchors, bad key, port)

Foreign exceptions (``ssl``, ``OSError``, SQLAlchemy via ``StorageError``) are translated
where they cross into this package.
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class EdgeError(HybridgeError):
    """Root of every error raised by ``hybridge.edge``."""


class InvalidZone(EdgeError):
    """A zone value is invalid; the message quotes it and says what is accepted."""


class ZoneNotFound(EdgeError):
    """No zone has the name asked for."""


class ZoneConflict(EdgeError):
    """The zone cannot be added next to the existing ones."""


class EdgeSetupError(EdgeError):
    """The edge server cannot start with the configuration given."""
