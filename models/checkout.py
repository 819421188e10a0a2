"""Checkout sessions and the one state machine that owns their transitions.

    pending → open → processing ⇄ requires_action → succeeded | failed | expired | canceled

`failed` is not final: the buyer may try another card until the checkout expires, so a failed
checkout can move back to `processing`. `succeeded`, `expired` and `canceled` are final.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, IdMixin, TimestampMixin, sql_in_list, utcnow
from models.catalog import Product, ProductPrice
from models.customer import Customer

PENDING = "pending"
OPEN = "open"
PROCESSING = "processing"
REQUIRES_ACTION = "requires_action"
SUCCEEDED = "succeeded"
FAILED = "failed"
EXPIRED = "expired"
CANCELED = "canceled"

STATUSES = (PENDING, OPEN, PROCESSING, REQUIRES_ACTION, SUCCEEDED, FAILED, EXPIRED, CANCELED)
TERMINAL_STATUSES = frozenset({SUCCEEDED, EXPIRED, CANCELED})
# A buyer may (re)submit a card in these states; `processing` and the final states refuse.
CONFIRMABLE_STATUSES = frozenset({OPEN, REQUIRES_ACTION, FAILED})
# A checkout in these states will never be paid through its client secret again.
FINISHED_STATUSES = (SUCCEEDED, EXPIRED, CANCELED)
# Statuses in which a checkout still holds its idempotency key (see the partial unique index).
KEY_HOLDING_STATUSES = tuple(s for s in STATUSES if s not in (EXPIRED, CANCELED))

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({OPEN, FAILED, EXPIRED, CANCELED}),
    # open → succeeded/failed/requires_action happen when the SDK confirmed with Stripe.js
    # itself and only the webhook tells us.
    OPEN: frozenset({PROCESSING, REQUIRES_ACTION, SUCCEEDED, FAILED, EXPIRED, CANCELED}),
    # A checkout being charged is never expired: Stripe may still capture the money, so the
    # reconciler asks Stripe instead.
    PROCESSING: frozenset({REQUIRES_ACTION, SUCCEEDED, FAILED, CANCELED}),
    REQUIRES_ACTION: frozenset({PROCESSING, SUCCEEDED, FAILED, EXPIRED, CANCELED}),
    FAILED: frozenset({PROCESSING, REQUIRES_ACTION, SUCCEEDED, EXPIRED, CANCELED}),
    SUCCEEDED: frozenset(),
    EXPIRED: frozenset(),
    CANCELED: frozenset(),
}

CHECKOUT_TTL_SECONDS = 3600


class IllegalTransition(Exception):
    def __init__(self, checkout_id: uuid.UUID, current: str, requested: str) -> None:
        super().__init__(f"checkout {checkout_id}: {current} → {requested} is not allowed")
        self.current = current
        self.requested = requested


class CheckoutSession(IdMixin, TimestampMixin, Base):
    __tablename__ = "checkout_sessions"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in_list(STATUSES)})", "status_known"),
        CheckConstraint(
            "intent_type IS NULL OR intent_type IN ('payment', 'setup')", "intent_type"
        ),
        CheckConstraint("amount >= 0", "amount_not_negative"),
        CheckConstraint("quantity >= 1", "quantity_positive"),
        # One live checkout per idempotency key: twenty identical concurrent creates race on
        # this index and nineteen of them get the winner's row.
        Index(
            "uq_checkout_sessions_customer_idempotency_key",
            "customer_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text(f"status IN ({sql_in_list(KEY_HOLDING_STATUSES)})"),
        ),
        Index("ix_checkout_sessions_status_expires_at", "status", "expires_at"),
        Index("ix_checkout_sessions_organization_id_created_at", "organization_id", "created_at"),
        # Finished checkouts whose client secret the retention job has yet to scrub.
        Index(
            "ix_checkout_sessions_unscrubbed_completed_at",
            "completed_at",
            postgresql_where=text(
                f"client_secret IS NOT NULL AND status IN ({sql_in_list(FINISHED_STATUSES)})"
            ),
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"), nullable=False)
    price_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product_prices.id"), nullable=False)
    # A reference to the token that opened it, never the token itself.
    session_token_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("session_tokens.id", ondelete="SET NULL")
    )
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    # SHA-256 of the create request the key first answered: a reuse with another body is refused.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, default=PENDING, server_default=PENDING
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    intent_type: Mapped[str | None] = mapped_column(String(16))
    client_secret: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_setup_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    next_action: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    customer_email: Mapped[str | None] = mapped_column(String(320))
    customer_name: Mapped[str | None] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    prepare_attempts: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    confirm_attempts: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    # The buyer's current confirmation (the version at which it entered `processing`) and what
    # it confirms with (Stripe ids, never card data): if the `checkout.confirm` message is lost,
    # the reconciler sends the same confirmation, under the same idempotency key.
    confirmation: Mapped[int | None] = mapped_column(Integer)
    confirm_payment_method: Mapped[str | None] = mapped_column(String(255))
    confirm_confirmation_token: Mapped[str | None] = mapped_column(String(255))
    # When the reconciler last handed the checkout out: it serves the least recently seen first,
    # so a batch of checkouts Stripe cannot settle yet does not hold up the rest.
    reconciled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    customer: Mapped[Customer] = relationship()
    product: Mapped[Product] = relationship()
    price: Mapped[ProductPrice] = relationship()

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_confirmable(self) -> bool:
        return self.status in CONFIRMABLE_STATUSES

    def is_expired_at(self, now: datetime) -> bool:
        return now >= self.expires_at

    def can_transition(self, to: str) -> bool:
        return to in TRANSITIONS[self.status]

    def transition(self, to: str, **changes: Any) -> bool:
        """Move to `to`, applying `changes` and bumping `version`.

        Returns False (and changes nothing) when the checkout is already in `to` with the same
        field values, so a webhook and a task reporting the same outcome make one change.
        Raises IllegalTransition for anything the lifecycle forbids; callers that receive
        out-of-order news (webhooks) check `can_transition` first.
        """
        if to not in STATUSES:
            raise ValueError(f"unknown checkout status {to!r}")
        if to == self.status:
            return self.update(**changes)
        if not self.can_transition(to):
            raise IllegalTransition(self.id, self.status, to)
        for field, value in changes.items():
            setattr(self, field, value)
        self.status = to
        if to in TERMINAL_STATUSES:
            self.completed_at = utcnow()
        self.version += 1
        return True

    def update(self, **changes: Any) -> bool:
        """Apply visible changes without a status change; bumps `version` if anything changed."""
        changed = False
        for field, value in changes.items():
            if getattr(self, field) != value:
                setattr(self, field, value)
                changed = True
        if changed:
            self.version += 1
        return changed
