"""checkout recovery: the confirmation to re-send, and when the reconciler last looked

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("checkout_sessions", sa.Column("confirmation", sa.Integer(), nullable=True))
    op.add_column(
        "checkout_sessions", sa.Column("confirm_payment_method", sa.String(255), nullable=True)
    )
    op.add_column(
        "checkout_sessions",
        sa.Column("confirm_confirmation_token", sa.String(255), nullable=True),
    )
    op.add_column(
        "checkout_sessions",
        sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("checkout_sessions", "reconciled_at")
    op.drop_column("checkout_sessions", "confirm_confirmation_token")
    op.drop_column("checkout_sessions", "confirm_payment_method")
    op.drop_column("checkout_sessions", "confirmation")
