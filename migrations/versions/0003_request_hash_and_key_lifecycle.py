"""checkout_sessions.request_hash; api_keys.name, expires_at, last_used_at

An idempotency key is bound to the digest of the request it first answered (a reuse with another
body is refused). A rotated API key keeps working until `expires_at`; `last_used_at` is written
at most once per few minutes per key.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: checkouts created before this column carry no digest and are not compared.
    op.add_column("checkout_sessions", sa.Column("request_hash", sa.String(64), nullable=True))
    op.add_column("api_keys", sa.Column("name", sa.String(100), nullable=True))
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("api_keys", "last_used_at")
    op.drop_column("api_keys", "expires_at")
    op.drop_column("api_keys", "name")
    op.drop_column("checkout_sessions", "request_hash")
