from __future__ import annotations

import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, IdMixin, TimestampMixin

product_features = Table(
    "product_features",
    Base.metadata,
    Column("product_id", ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    Column("feature_id", ForeignKey("features.id", ondelete="CASCADE"), primary_key=True),
    # What this product grants of a limited feature (numeric_limit / usage_quota); -1 unlimited,
    # NULL for an on/off feature.
    Column("limit_value", BigInteger),
    CheckConstraint("limit_value IS NULL OR limit_value >= -1", "limit_range"),
)

FEATURE_TYPES = ("boolean_flag", "numeric_limit", "usage_quota")
UNLIMITED = -1


class Feature(IdMixin, TimestampMixin, Base):
    """An entitlement key (`pro_export`) that products grant.

    Its `type` says what a grant means: `boolean_flag` on/off; `numeric_limit` a count the app
    owns (5 projects), whose limit each product sets; `usage_quota` a metered amount per period
    (10,000 API calls a month), tracked by BillingOS. `period` is the calendar window of a quota
    not granted by a subscription (a subscription's quota follows its billing period). Two
    grants of one feature give the largest limit, or their sum when `additive`.
    """

    __tablename__ = "features"
    __table_args__ = (
        UniqueConstraint("organization_id", "key"),
        CheckConstraint(
            "type IN ('boolean_flag', 'numeric_limit', 'usage_quota')", "feature_type_known"
        ),
        CheckConstraint("period IS NULL OR period IN ('month', 'year')", "period_known"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(100), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    type: Mapped[str] = mapped_column(
        String(16), nullable=False, default="boolean_flag", server_default="boolean_flag"
    )
    period: Mapped[str | None] = mapped_column(String(8))
    unit: Mapped[str | None] = mapped_column(String(50))
    additive: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )


class Product(IdMixin, TimestampMixin, Base):
    __tablename__ = "products"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=true()
    )
    stripe_product_id: Mapped[str | None] = mapped_column(String(255), unique=True)

    prices: Mapped[list[ProductPrice]] = relationship(
        back_populates="product", order_by="ProductPrice.created_at"
    )
    features: Mapped[list[Feature]] = relationship(
        secondary=product_features, order_by="Feature.key"
    )
    # The same rows with the limit each grants (read-only: `features` writes the links).
    feature_grants: Mapped[list[ProductFeature]] = relationship(viewonly=True)

    def limit_of(self, feature_id: uuid.UUID) -> int | None:
        return next(
            (g.limit_value for g in self.feature_grants if g.feature_id == feature_id), None
        )


class ProductFeature(Base):
    """A product's grant of a feature, with its limit."""

    __table__ = product_features

    product_id: Mapped[uuid.UUID]
    feature_id: Mapped[uuid.UUID]
    limit_value: Mapped[int | None]


class ProductPrice(IdMixin, TimestampMixin, Base):
    """A price of a product: one-time, or recurring monthly/yearly with an optional trial."""

    __tablename__ = "product_prices"
    __table_args__ = (
        CheckConstraint("amount >= 0", "amount_not_negative"),
        CheckConstraint("type IN ('one_time', 'recurring')", "type_known"),
        CheckConstraint(
            "(type = 'one_time' AND interval IS NULL AND trial_period_days IS NULL)"
            " OR (type = 'recurring' AND interval IN ('month', 'year'))",
            "interval_matches_type",
        ),
        CheckConstraint(
            "trial_period_days IS NULL OR trial_period_days BETWEEN 1 AND 730", "trial_range"
        ),
        CheckConstraint("currency ~ '^[a-z]{3}$'", "currency_iso"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), nullable=False, index=True
    )
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    interval: Mapped[str | None] = mapped_column(String(8))
    trial_period_days: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=true()
    )
    stripe_price_id: Mapped[str | None] = mapped_column(String(255), unique=True)

    product: Mapped[Product] = relationship(back_populates="prices")

    @property
    def is_recurring(self) -> bool:
        return self.type == "recurring"

    @property
    def is_free(self) -> bool:
        return self.amount == 0
