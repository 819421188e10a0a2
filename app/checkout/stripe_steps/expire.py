"""Expire: overdue checkouts are closed, and what Stripe holds for them released."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select

from app.checkout.stripe_steps.attempts import (
    EXPIRABLE_STATUSES,
    _lock,
)
from app.db import db
from app.stripe_gateway import (
    InvalidStripeRequest,
    get_gateway,
)
from app.stripe_sync import (
    EXPIRY_CANCELLATION_COMMENT,
    EXPIRY_CANCELLATION_REASON,
    apply_payment_intent,
    apply_subscription,
    move_checkout,
)
from models import CheckoutSession
from models.base import utcnow
from models.checkout import EXPIRED

log = logging.getLogger(__name__)


def overdue_checkout_ids(limit: int = 500) -> list[uuid.UUID]:
    """Checkouts past `expires_at` that can still expire (never one being charged)."""
    with db.transaction() as session:
        return list(
            session.execute(
                select(CheckoutSession.id)
                .where(
                    CheckoutSession.status.in_(EXPIRABLE_STATUSES),
                    CheckoutSession.expires_at <= utcnow(),
                )
                .order_by(CheckoutSession.expires_at)
                .limit(limit)
            ).scalars()
        )


def expire_checkout(checkout_id: uuid.UUID) -> None:
    """Cancel an overdue checkout's intent in Stripe, then expire it — if Stripe agrees.

    The checkout's fate is decided by what Stripe answers: a canceled intent or subscription
    expires it; one that was paid at the last moment completes it instead.
    """
    with db.transaction() as session:
        checkout = _lock(session, checkout_id)
        if (
            checkout is None
            or checkout.status not in EXPIRABLE_STATUSES
            or not checkout.is_expired_at(utcnow())
        ):
            return
        payment_intent_id = checkout.stripe_payment_intent_id
        subscription_id = checkout.stripe_subscription_id
        if payment_intent_id is None and subscription_id is None:
            # Nothing exists in Stripe (yet): a late prepare finds it expired and cancels what
            # it made.
            move_checkout(checkout, EXPIRED)
            return
    gateway = get_gateway()
    key = f"checkout:{checkout_id}:expire"
    stripe_object: Any
    if subscription_id is not None:
        stripe_object = gateway.retrieve_subscription(subscription_id)
        unpaid = stripe_object.status == "incomplete" or (
            stripe_object.status == "trialing" and stripe_object.pending_setup_intent is not None
        )
        if unpaid:
            try:
                stripe_object = gateway.cancel_subscription(
                    subscription_id, idempotency_key=key, comment=EXPIRY_CANCELLATION_COMMENT
                )
            except InvalidStripeRequest:
                stripe_object = gateway.retrieve_subscription(subscription_id)
            _void_first_invoice(checkout_id, stripe_object)
        with db.transaction() as session:
            apply_subscription(session, stripe_object)
        return
    assert payment_intent_id is not None
    try:
        stripe_object = gateway.cancel_payment_intent(
            payment_intent_id, idempotency_key=key, reason=EXPIRY_CANCELLATION_REASON
        )
    except InvalidStripeRequest:
        # Already succeeded (paid at the last moment) or canceled: Stripe's state decides.
        stripe_object = gateway.retrieve_payment_intent(payment_intent_id)
    with db.transaction() as session:
        apply_payment_intent(session, stripe_object)


def _void_first_invoice(checkout_id: uuid.UUID, subscription: Any) -> None:
    """Void the open invoice of a subscription canceled at expiry.

    Canceling a subscription leaves its open invoice payable: the buyer's page could still
    confirm its PaymentIntent and be charged for a subscription that no longer exists. Voiding
    cancels that PaymentIntent (it cannot be canceled on its own). A payment that beat the
    void is refunded by `stripe_sync` once it is seen.
    """
    invoice_id = getattr(subscription, "latest_invoice", None)
    if invoice_id is not None and not isinstance(invoice_id, str):
        invoice_id = invoice_id.id
    if not invoice_id:
        return
    gateway = get_gateway()
    invoice = gateway.retrieve_invoice(invoice_id)
    if invoice.status != "open":
        return
    try:
        gateway.void_invoice(invoice_id, idempotency_key=f"checkout:{checkout_id}:expire:void")
    except InvalidStripeRequest:
        log.warning("checkout %s: its invoice could not be voided (paid meanwhile?)", checkout_id)
