"""Applying subscriptions to subscription rows and checkouts; never regresses."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.stripe_gateway import CHECKOUT_METADATA, get_gateway
from app.stripe_sync.checkouts import (
    _lock_checkout,
    _recompute_entitlements,
    move_checkout,
)
from app.stripe_sync.objects import (
    CLOCK_SKEW,
    EXPIRY_CANCELLATION_COMMENT,
    Data,
    StripeObject,
    _id,
    _metadata,
    _timestamp,
    _uuid,
    as_dict,
)
from app.stripe_sync.reads import fetched
from models import CheckoutSession, ProductPrice, Subscription
from models.base import utcnow
from models.checkout import (
    CANCELED,
    EXPIRED,
    SUCCEEDED,
)
from models.subscription import ENDED_STATUSES

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- subscriptions


def _period(subscription: Data) -> tuple[datetime | None, datetime | None]:
    # In current API versions the period lives on the items, not the subscription.
    items = subscription.get("items")
    data = items.get("data") if items else None
    if data:
        first = data[0]
        return _timestamp(first.get("current_period_start")), _timestamp(
            first.get("current_period_end")
        )
    return _timestamp(subscription.get("current_period_start")), _timestamp(
        subscription.get("current_period_end")
    )


def _stripe_price_id(subscription: Data) -> str | None:
    items = subscription.get("items")
    data = items.get("data") if items else None
    if not data:
        return None
    return _id(data[0].get("price"))


def _subscription_fields(session: Session, row: Subscription, subscription: Data) -> dict[str, Any]:
    period_start, period_end = _period(subscription)
    fields: dict[str, Any] = {
        "status": subscription["status"],
        "current_period_start": period_start,
        "current_period_end": period_end,
        "trial_end": _timestamp(subscription.get("trial_end")),
        "cancel_at_period_end": bool(subscription.get("cancel_at_period_end")),
        "canceled_at": _timestamp(subscription.get("canceled_at")),
        "ended_at": _timestamp(subscription.get("ended_at")),
    }
    stripe_price_id = _stripe_price_id(subscription)
    current_price = session.get(ProductPrice, row.price_id)
    if (
        stripe_price_id is not None
        and current_price is not None
        and current_price.stripe_price_id != stripe_price_id
    ):
        # A plan change made in Stripe (billing portal, issue 7): follow it if we know the price.
        price = session.execute(
            select(ProductPrice).where(
                ProductPrice.stripe_price_id == stripe_price_id,
                ProductPrice.organization_id == row.organization_id,
            )
        ).scalar_one_or_none()
        if price is not None:
            fields["price_id"] = price.id
            fields["product_id"] = price.product_id
    return fields


def _differs(row: Subscription, fields: Mapping[str, Any]) -> bool:
    return any(getattr(row, name) != value for name, value in fields.items())


def _lock_subscription(session: Session, stripe_subscription_id: str) -> Subscription | None:
    return session.execute(
        select(Subscription)
        .where(Subscription.stripe_subscription_id == stripe_subscription_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _insert_checkout_subscription(
    session: Session, checkout: CheckoutSession, subscription: Data
) -> Subscription | None:
    """The row of a subscription a checkout created, inserted once (unique per checkout)."""
    session.execute(
        insert(Subscription)
        .values(
            id=uuid.uuid4(),
            organization_id=checkout.organization_id,
            customer_id=checkout.customer_id,
            product_id=checkout.product_id,
            price_id=checkout.price_id,
            checkout_session_id=checkout.id,
            stripe_subscription_id=subscription["id"],
            status=subscription["status"],
        )
        # A second insert for the same checkout or Stripe id finds the first one's row. A
        # conflict on the one-live-subscription-per-product index leaves no row: the caller
        # sees None (the buyer already subscribed through another checkout).
        .on_conflict_do_nothing()
    )
    return _lock_subscription(session, subscription["id"])


def lock_subscription_rows(
    session: Session, subscription: Data
) -> tuple[CheckoutSession | None, Subscription | None]:
    """Lock a subscription's checkout (if any), then its row: the codebase's lock order."""
    stripe_id = subscription["id"]
    known = session.execute(
        select(Subscription.checkout_session_id).where(
            Subscription.stripe_subscription_id == stripe_id
        )
    ).first()
    checkout_id = (
        known.checkout_session_id
        if known is not None
        else _uuid(_metadata(subscription).get(CHECKOUT_METADATA))
    )
    checkout = _lock_checkout(session, checkout_id)
    if checkout is not None and checkout.stripe_subscription_id not in (None, stripe_id):
        checkout = None
    return checkout, _lock_subscription(session, stripe_id)


def apply_subscription(
    session: Session, subscription: StripeObject, *, event_created: datetime | None = None
) -> Subscription | None:
    """Record a Stripe subscription's state; complete its checkout once it is live.

    `event_created` is the `created` of the event that carried `subscription`; None means the
    object was just fetched from Stripe (the freshest truth there is). Returns our row, or None
    when the subscription is not one we know.
    """
    subscription = as_dict(subscription)
    stripe_id = subscription["id"]
    checkout, row = lock_subscription_rows(session, subscription)
    if row is None:
        if checkout is None:
            return None
        row = _insert_checkout_subscription(session, checkout, subscription)
        if row is None:
            return None

    now_stamp = utcnow().replace(microsecond=0) + CLOCK_SKEW
    if (
        event_created is not None
        and row.stripe_state_at is not None
        and event_created <= row.stripe_state_at
    ):
        if not _differs(row, _subscription_fields(session, row, subscription)):
            return row
        # Same second or older than what we hold: the payload may be stale. Ask Stripe — read
        # outside this transaction, and used only if neither row moved since.
        subscription = as_dict(
            fetched(
                session,
                ("subscription", stripe_id),
                (checkout.version if checkout is not None else None, row.version),
                lambda: get_gateway().retrieve_subscription(stripe_id),
            )
        )
        event_created = None
        now_stamp = max(row.stripe_state_at, now_stamp)
    status = subscription["status"]
    if row.status in ENDED_STATUSES and status != row.status:
        log.info("subscription %s: ignoring %s after %s", stripe_id, status, row.status)
        return row
    fields = _subscription_fields(session, row, subscription)
    changed = _differs(row, fields)
    for name, value in fields.items():
        setattr(row, name, value)
    stamp = event_created if event_created is not None else now_stamp
    if row.stripe_state_at is None or stamp > row.stripe_state_at:
        row.stripe_state_at = stamp

    if checkout is not None:
        if checkout.stripe_subscription_id is None:
            checkout.stripe_subscription_id = stripe_id
        _move_checkout_for_subscription(checkout, subscription)
    if changed:
        session.flush()
        _recompute_entitlements(session, row.customer_id)
    return row


def _move_checkout_for_subscription(checkout: CheckoutSession, subscription: Data) -> None:
    status = subscription["status"]
    if checkout.intent_type == "setup":
        # A trial checkout is done once the subscription is trialing and its card is saved
        # (Stripe clears `pending_setup_intent` when the SetupIntent succeeds).
        if status in ("trialing", "active") and subscription.get("pending_setup_intent") is None:
            move_checkout(checkout, SUCCEEDED, next_action=None, last_error=None)
    elif status == "active":
        move_checkout(checkout, SUCCEEDED, next_action=None, last_error=None)
    if status == "incomplete_expired":
        move_checkout(checkout, EXPIRED)
    elif status == "canceled" and not checkout.is_terminal:
        details = subscription.get("cancellation_details") or {}
        expired = details.get("comment") == EXPIRY_CANCELLATION_COMMENT
        move_checkout(checkout, EXPIRED if expired else CANCELED)
