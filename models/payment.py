from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampMixin


class PaymentIntent(IdMixin, TimestampMixin, Base):
    """Our record of one Stripe PaymentIntent: the payment history merchants see."""

    __tablename__ = "payment_intents"
    __table_args__ = (
        CheckConstraint("amount >= 0", "amount_not_negative"),
        CheckConstraint("amount_refunded >= 0 AND amount_refunded <= amount", "refund_bounded"),
        Index("ix_payment_intents_organization_id_created_at", "organization_id", "created_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    checkout_session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("checkout_sessions.id", ondelete="SET NULL"), index=True
    )
    stripe_payment_intent_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # Stripe's PaymentIntent status, as last learned from Stripe.
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    amount_refunded: Mapped[int] = mapped_column(
        BigInteger, nullable=False, default=0, server_default="0"
    )
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    succeeded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The status of a dispute of this payment (Stripe's `dispute.status`), None if undisputed.
    # A `lost` dispute took the money back: the payment grants nothing any more.
    dispute_status: Mapped[str | None] = mapped_column(String(32))
