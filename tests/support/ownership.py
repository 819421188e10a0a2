"""Rows that say what a customer owns: subscriptions and one-time purchases.

For tests of what is *derived* from ownership (entitlements, the customer views) without going
through a checkout: they insert the same rows the checkout and webhook code writes, then commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from app.db import db
from models import CheckoutSession, PaymentIntent, ProductPrice, Subscription
from models.base import utcnow


def make_subscription(
    customer_id: Any,
    price: ProductPrice,
    *,
    status: str = "active",
    period_end: datetime | None = None,
    trial_end: datetime | None = None,
    stripe_subscription_id: str | None = None,
    cancel_at_period_end: bool = False,
) -> Subscription:
    now = utcnow()
    subscription = Subscription(
        organization_id=price.organization_id,
        customer_id=customer_id,
        product_id=price.product_id,
        price_id=price.id,
        status=status,
        stripe_subscription_id=stripe_subscription_id or f"sub_test_{uuid.uuid4().hex[:14]}",
        current_period_start=now,
        current_period_end=period_end or now + timedelta(days=30),
        trial_end=trial_end,
        cancel_at_period_end=cancel_at_period_end,
    )
    db.session.add(subscription)
    db.session.commit()
    return subscription


def make_purchase(
    customer_id: Any, price: ProductPrice, *, status: str = "succeeded"
) -> PaymentIntent:
    """A checkout for `price` and its PaymentIntent, as a paid one-time purchase leaves them."""
    now = utcnow()
    checkout = CheckoutSession(
        organization_id=price.organization_id,
        customer_id=customer_id,
        product_id=price.product_id,
        price_id=price.id,
        idempotency_key=f"test:{uuid.uuid4().hex}",
        status="succeeded" if status == "succeeded" else "open",
        amount=price.amount,
        currency=price.currency,
        intent_type="payment",
        expires_at=now + timedelta(hours=1),
    )
    db.session.add(checkout)
    db.session.flush()
    payment_intent = PaymentIntent(
        organization_id=price.organization_id,
        customer_id=customer_id,
        checkout_session_id=checkout.id,
        stripe_payment_intent_id=f"pi_test_{uuid.uuid4().hex[:14]}",
        amount=price.amount,
        currency=price.currency,
        status=status,
        succeeded_at=now if status == "succeeded" else None,
    )
    db.session.add(payment_intent)
    db.session.commit()
    return payment_intent
