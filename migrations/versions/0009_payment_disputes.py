"""payment_intents.dispute_status: a disputed payment, visible to the merchant

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payment_intents", sa.Column("dispute_status", sa.String(length=32)))


def downgrade() -> None:
    op.drop_column("payment_intents", "dispute_status")
