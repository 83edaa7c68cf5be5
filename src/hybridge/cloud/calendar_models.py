"""The calendar service's tables (schema ``cloud``, migration ``0003_calendar``).

Every row carries its ``org_id``: a mailbox is enabled per organisation, and every query
of the service filters on the organisation of the caller (connector or admin).
"""

from __future__ import annotations

import sqlalchemy as sa

from hybridge.web.schema import metadata

#: Per organisation: the users-list version (grows on every change) and the join template.
calendar_org = sa.Table(
    "calendar_org",
    metadata,
    sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), primary_key=True),
    sa.Column("users_version", sa.BigInteger, nullable=False),
    sa.Column("template_header", sa.Text, nullable=False),
    sa.Column("template_footer", sa.Text, nullable=False),
    sa.Column("template_updated_at", sa.DateTime(timezone=True)),
    sa.Column("template_updated_by", sa.String(320)),
)

calendar_user = sa.Table(
    "calendar_user",
    metadata,
    sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), primary_key=True),
    sa.Column("mailbox", sa.String(256), primary_key=True),
    sa.Column("display_name", sa.String(256), nullable=False),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("added_by", sa.String(320), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(1024), nullable=False),
    sa.Column("status_at", sa.DateTime(timezone=True)),
    sa.Column("ooo_state", sa.String(16)),
    sa.Column("ooo_active", sa.Boolean),
    sa.Column("ooo_until", sa.DateTime(timezone=True)),
)

calendar_meeting = sa.Table(
    "calendar_meeting",
    metadata,
    sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), primary_key=True),
    sa.Column("mailbox", sa.String(256), primary_key=True),
    sa.Column("meeting_id", sa.String(1024), primary_key=True),
    sa.Column("version", sa.String(1024), nullable=False),
    sa.Column("uid", sa.String(1024), nullable=False),
    sa.Column("organizer", sa.String(256), nullable=False),
    sa.Column("subject", sa.String(2048), nullable=False),
    sa.Column("start_utc", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end_utc", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recurring", sa.Boolean, nullable=False),
    sa.Column("attendees_count", sa.Integer, nullable=False),
    sa.Column("keyword", sa.String(32)),
    sa.Column("join_url", sa.String(2048)),
    #: The meeting as received (calendar.wire JSON, body dropped): what the lists show.
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # The public join page looks a meeting up by its URL (migration 0005_join_url_index).
    sa.Index("ix_calendar_meeting_join_url", "join_url"),
)

#: Room mailboxes (attendees with role ``resource``) of each stored meeting, for rooms.
calendar_meeting_room = sa.Table(
    "calendar_meeting_room",
    metadata,
    sa.Column("org_id", sa.String(36), primary_key=True),
    sa.Column("room", sa.String(256), primary_key=True),
    sa.Column("mailbox", sa.String(256), primary_key=True),
    sa.Column("meeting_id", sa.String(1024), primary_key=True),
)
