"""feature types and limits; the usage ledger, its per-period aggregates and daily rollups

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "features",
        sa.Column("type", sa.String(16), server_default="boolean_flag", nullable=False),
    )
    op.add_column("features", sa.Column("period", sa.String(8), nullable=True))
    op.add_column("features", sa.Column("unit", sa.String(50), nullable=True))
    op.add_column(
        "features",
        sa.Column("additive", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_check_constraint(
        "ck_features_feature_type_known",
        "features",
        "type IN ('boolean_flag', 'numeric_limit', 'usage_quota')",
    )
    op.create_check_constraint(
        "ck_features_period_known", "features", "period IS NULL OR period IN ('month', 'year')"
    )
    op.add_column("product_features", sa.Column("limit_value", sa.BigInteger(), nullable=True))
    op.create_check_constraint(
        "ck_product_features_limit_range",
        "product_features",
        "limit_value IS NULL OR limit_value >= -1",
    )

    op.create_table(
        "usage_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("feature_id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metadata", postgresql.JSONB(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("quantity > 0", name="ck_usage_events_quantity_positive"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_usage_events_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_usage_events_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["feature_id"],
            ["features.id"],
            name="fk_usage_events_feature_id_features",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_usage_events"),
        sa.UniqueConstraint(
            "customer_id", "idempotency_key", name="uq_usage_events_customer_id_idempotency_key"
        ),
    )
    op.create_index(
        "ix_usage_events_period_end_created_at", "usage_events", ["period_end", "created_at"]
    )

    op.create_table(
        "usage_aggregates",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("feature_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_usage_aggregates_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["feature_id"],
            ["features.id"],
            name="fk_usage_aggregates_feature_id_features",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "feature_id", "period_start", name="pk_usage_aggregates"
        ),
    )

    op.create_table(
        "usage_rollups",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("feature_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_usage_rollups_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["feature_id"],
            ["features.id"],
            name="fk_usage_rollups_feature_id_features",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "feature_id", "day", name="pk_usage_rollups"),
    )


def downgrade() -> None:
    op.drop_table("usage_rollups")
    op.drop_table("usage_aggregates")
    op.drop_index("ix_usage_events_period_end_created_at", table_name="usage_events")
    op.drop_table("usage_events")
    op.drop_constraint("ck_product_features_limit_range", "product_features", type_="check")
    op.drop_column("product_features", "limit_value")
    op.drop_constraint("ck_features_period_known", "features", type_="check")
    op.drop_constraint("ck_features_feature_type_known", "features", type_="check")
    for column in ("additive", "unit", "period", "type"):
        op.drop_column("features", column)
