"""Databases of the roles: SQLAlchemy 2 engines and Alembic migrations.

Two schemas, each with its own migration history:

- ``node``: what a connector or an edge keeps locally (trust store, audit log, vault, zones);
- ``cloud``: what the cloud keeps (organisations, admins, connectors, CA-list versions).

SQLite in the role's data directory is the default; a PostgreSQL URL is accepted.
"""

from hybridge.core.errors import HybridgeError


class StorageError(HybridgeError):
    """The database could not be opened, migrated or written."""
