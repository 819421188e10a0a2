from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    event,
    false,
    inspect,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.base import Base, IdMixin, TimestampMixin, sql_in_list
from models.catalog import Product, ProductPrice

# Stripe's subscription statuses (https://docs.stripe.com/api/subscriptions/object#subscription_object-status).
SubscriptionStatus = Literal[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
]
STATUSES: tuple[str, ...] = get_args(SubscriptionStatus)
# Statuses that grant the product's features.
ENTITLING_STATUSES = frozenset({"trialing", "active", "past_due"})
# A customer holds at most one subscription per product in these statuses.
LIVE_STATUSES = ("trialing", "active", "past_due", "unpaid")
# Statuses Stripe never leaves (https://docs.stripe.com/billing/subscriptions/overview): the
# subscription is over for good, nothing is left to cancel or update.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})


class Subscription(IdMixin, TimestampMixin, Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in_list(STATUSES)})", "status_known"),
        Index(
            "uq_subscriptions_customer_id_product_id_live",
            "customer_id",
            "product_id",
            unique=True,
            postgresql_where=text(f"status IN ({sql_in_list(LIVE_STATUSES)})"),
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"), nullable=False)
    price_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product_prices.id"), nullable=False)
    # One subscription per checkout: a retried task or a duplicate webhook cannot make two.
    checkout_session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("checkout_sessions.id", ondelete="SET NULL"), unique=True
    )
    # The PaymentIntent of the first invoice, when there was one (none for trials and free).
    payment_intent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_intents.id", ondelete="SET NULL")
    )
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    current_period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    trial_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # `created` of the newest Stripe event applied, so an older event never overwrites it.
    stripe_state_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Increases by one on every change of the row (a flush hook, `bump_subscription_versions`),
    # so real-time `subscription.updated` messages can be ordered per subscription.
    version: Mapped[int] = mapped_column(
        Integer, nullable=False, default=1, server_default=text("1")
    )

    product: Mapped[Product] = relationship()
    price: Mapped[ProductPrice] = relationship()


def bump_subscription_versions(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Before every flush: +1 on `version` of each Subscription whose columns changed.

    One hook for every writer (stripe_sync, the cancel endpoint, tests, scripts), so no path can
    change a subscription without a new version. Writers hold the row lock (`FOR UPDATE`,
    `populate_existing`) while they change it, so the in-memory version is the committed one.
    Inserts start at 1 (the column default); several flushes in one transaction bump several
    times, which keeps the order and only skips numbers.
    """
    for obj in session.dirty:
        if not isinstance(obj, Subscription):
            continue
        state = inspect(obj)
        if state.attrs.version.history.has_changes():
            continue  # set explicitly by the caller
        changed = any(
            state.attrs[column.key].history.has_changes()
            for column in Subscription.__mapper__.column_attrs
            if column.key != "updated_at"
        )
        if changed:
            obj.version = (obj.version or 0) + 1


# Every Session (request, task, CLI, test), not one factory: nothing may bypass it.
event.listen(Session, "before_flush", bump_subscription_versions)
