"""Connector: the traversal client's premises-side listener (address, transport, allow-list).

Revision ID: 0009_traversal_listener
Revises: 0008_calendar_link
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_traversal_listener"
down_revision = "0008_calendar_link"
branch_labels = None
depends_on = None

_COLUMNS = (
    "listen_host",
    "listen_port",
    "listen_transport",
    "listen_allow",
    "listen_require_client_cert",
)


def upgrade() -> None:
    # All NULL: no listener (the behaviour before this revision). Nullable columns can be
    # added in place on SQLite and PostgreSQL; the checks below need a table rebuild on
    # SQLite, hence the batch.
    with op.batch_alter_table("connector_traversal") as batch:
        batch.add_column(sa.Column("listen_host", sa.String(45), nullable=True))
        batch.add_column(sa.Column("listen_port", sa.Integer, nullable=True))
        batch.add_column(sa.Column("listen_transport", sa.String(3), nullable=True))
        # Comma-separated networks; empty: the premises server's own addresses.
        batch.add_column(sa.Column("listen_allow", sa.Text, nullable=True))
        batch.add_column(sa.Column("listen_require_client_cert", sa.Boolean, nullable=True))
        batch.create_check_constraint(
            "ck_connector_traversal_listen_port",
            "listen_port IS NULL OR listen_port BETWEEN 1 AND 65535",
        )
        batch.create_check_constraint(
            "ck_connector_traversal_listen_transport",
            "listen_transport IS NULL OR listen_transport IN ('tcp', 'tls')",
        )


def downgrade() -> None:
    with op.batch_alter_table("connector_traversal") as batch:
        batch.drop_constraint("ck_connector_traversal_listen_transport", type_="check")
        batch.drop_constraint("ck_connector_traversal_listen_port", type_="check")
        for column in reversed(_COLUMNS):
            batch.drop_column(column)
