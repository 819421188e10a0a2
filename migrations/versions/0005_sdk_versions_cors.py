"""organizations: default API version and the browser origins allowed to call the SDK routes

Existing organizations keep the version their integrations were written against (2026-11-27);
organizations created from now on default to the SDK dialect (2026-01-01), set by the
application.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "organizations",
        sa.Column(
            "api_version", sa.String(10), server_default=sa.text("'2026-11-27'"), nullable=False
        ),
    )
    op.add_column(
        "organizations",
        sa.Column(
            "allowed_origins",
            postgresql.ARRAY(sa.String(255)),
            server_default=sa.text("'{}'::varchar[]"),
            nullable=False,
        ),
    )
    # A preflight asks "does any organization allow this origin?" (it carries no credential).
    op.create_index(
        "ix_organizations_allowed_origins",
        "organizations",
        ["allowed_origins"],
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_index("ix_organizations_allowed_origins", table_name="organizations")
    op.drop_column("organizations", "allowed_origins")
    op.drop_column("organizations", "api_version")
