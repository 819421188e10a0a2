from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampMixin, sql_in_list, utcnow

PENDING = "pending"
PROCESSED = "processed"
IGNORED = "ignored"
FAILED = "failed"
STATUSES = (PENDING, PROCESSED, IGNORED, FAILED)


class StripeEvent(IdMixin, TimestampMixin, Base):
    """The webhook inbox: every verified Stripe event, stored before it is processed."""

    __tablename__ = "stripe_events"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in_list(STATUSES)})", "status_known"),
        Index("ix_stripe_events_status_received_at", "status", "received_at"),
        # Done events whose payload the retention job has yet to scrub.
        Index(
            "ix_stripe_events_unscrubbed_received_at",
            "received_at",
            postgresql_where=text(
                f"payload_scrubbed_at IS NULL AND status IN ({sql_in_list((PROCESSED, IGNORED))})"
            ),
        ),
    )

    stripe_event_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    api_version: Mapped[str | None] = mapped_column(String(64))
    livemode: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    object_id: Mapped[str | None] = mapped_column(String(255))
    event_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=PENDING, server_default=PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when retention replaced the payload (customer emails, client secrets) by its bare
    # envelope; such an event can no longer be replayed.
    payload_scrubbed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
