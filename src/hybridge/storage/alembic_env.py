"""The body of every schema's Alembic ``env.py``: run migrations on the connection we pass.

Migrations are written by hand (no autogenerate at run time), so no metadata is bound here.
"""

from __future__ import annotations

from alembic import context


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("hybridge migrations run through hybridge.storage.db.upgrade()")
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
