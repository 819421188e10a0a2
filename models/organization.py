from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, IdMixin, TimestampMixin


class Organization(IdMixin, TimestampMixin, Base):
    """A merchant: everything else belongs to exactly one organization."""

    __tablename__ = "organizations"
    __table_args__ = (
        Index("ix_organizations_allowed_origins", "allowed_origins", postgresql_using="gin"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # The API version a request without `X-BillingOS-Version` is rendered in.
    api_version: Mapped[str] = mapped_column(
        String(10), nullable=False, server_default=text("'2026-11-27'")
    )
    # Browser origins (scheme://host[:port]) the SDK may call the API from, for this merchant.
    allowed_origins: Mapped[list[str]] = mapped_column(
        ARRAY(String(255)), nullable=False, server_default=text("'{}'::varchar[]")
    )

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="organization")


class ApiKey(IdMixin, TimestampMixin, Base):
    """A merchant's secret key, stored only as its SHA-256 digest."""

    __tablename__ = "api_keys"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # The first characters of the key, safe to show so a merchant can tell keys apart.
    key_prefix: Mapped[str] = mapped_column(String(24), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A merchant's label ("production web", "billing cron").
    name: Mapped[str | None] = mapped_column(String(100))
    # Set on the old key when it is rotated: it keeps working until then (the overlap window).
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Approximate (written at most once per few minutes per key, never on every request).
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    organization: Mapped[Organization] = relationship(back_populates="api_keys")
