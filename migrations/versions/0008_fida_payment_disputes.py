"""payment_intents.dispute_status: a disputed payment, visible to the merchant

Revision ID: 0008_fida
Revises: 0007_fida
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_fida"
down_revision: str | None = "0007_fida"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payment_intents", sa.Column("dispute_status", sa.String(length=32)))


def downgrade() -> None:
    op.drop_column("payment_intents", "dispute_status")
