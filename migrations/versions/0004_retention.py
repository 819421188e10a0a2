"""Retention: indexes that keep the pruning jobs cheap, and a mark for scrubbed inbox payloads.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "stripe_events", sa.Column("payload_scrubbed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_stripe_events_unscrubbed_received_at",
        "stripe_events",
        ["received_at"],
        postgresql_where=sa.text(
            "payload_scrubbed_at IS NULL AND status IN ('processed', 'ignored')"
        ),
    )
    op.create_index(
        "ix_checkout_sessions_unscrubbed_completed_at",
        "checkout_sessions",
        ["completed_at"],
        postgresql_where=sa.text(
            "client_secret IS NOT NULL AND status IN ('succeeded', 'expired', 'canceled')"
        ),
    )
    op.create_index("ix_session_tokens_expires_at", "session_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_session_tokens_expires_at", table_name="session_tokens")
    op.drop_index("ix_checkout_sessions_unscrubbed_completed_at", table_name="checkout_sessions")
    op.drop_index("ix_stripe_events_unscrubbed_received_at", table_name="stripe_events")
    op.drop_column("stripe_events", "payload_scrubbed_at")
