from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampMixin


class Entitlement(IdMixin, TimestampMixin, Base):
    """A feature a customer may use, granted by a live subscription or a one-time purchase.

    Rows are derived data: they are recomputed from subscriptions and payments, never edited
    by hand, and each source grants a feature at most once (the unique constraints).
    """

    __tablename__ = "entitlements"
    __table_args__ = (
        CheckConstraint("source IN ('subscription', 'purchase')", "source_known"),
        CheckConstraint(
            "(source = 'subscription' AND subscription_id IS NOT NULL)"
            " OR (source = 'purchase' AND payment_intent_id IS NOT NULL)",
            "source_reference",
        ),
        UniqueConstraint("customer_id", "feature_id", "subscription_id"),
        UniqueConstraint("customer_id", "feature_id", "payment_intent_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"), nullable=False)
    feature_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("features.id", ondelete="CASCADE"), nullable=False
    )
    feature_key: Mapped[str] = mapped_column(String(100), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE")
    )
    payment_intent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_intents.id", ondelete="CASCADE")
    )
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
