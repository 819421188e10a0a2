from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, IdMixin, TimestampMixin
from models.organization import Organization


class Customer(IdMixin, TimestampMixin, Base):
    """An end customer of a merchant, known by the merchant's own user id (`external_id`)."""

    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("organization_id", "external_id"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(255))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Bumped (UPDATE … RETURNING) by every committed change of the customer's entitlements; the
    # `version` of `entitlements.updated`. Kept here, not in Redis, so it never goes backwards.
    entitlements_version: Mapped[int] = mapped_column(
        BigInteger, nullable=False, default=0, server_default=text("0")
    )

    organization: Mapped[Organization] = relationship()


class SessionToken(IdMixin, TimestampMixin, Base):
    """A short-lived credential the SDK holds for one customer; stored only as its digest."""

    __tablename__ = "session_tokens"
    # The retention job deletes expired tokens by this column.
    __table_args__ = (Index("ix_session_tokens_expires_at", "expires_at"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    customer: Mapped[Customer] = relationship()
