"""Refunding a payment that succeeded on a checkout that had already ended.

Expiring a subscription checkout cancels the subscription and voids its open invoice, but the
buyer's page may confirm the invoice's PaymentIntent in the moment before the void, and a
canceled subscription's invoice stays payable in Stripe. Such a payment buys nothing, so it is
refunded in full, automatically, and the refund is recorded on the payment row (the
`charge.refunded` webhook records it too; both keep the larger amount).
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import db
from app.entitlements.service import recompute_entitlements
from app.stripe_gateway import InvalidStripeRequest, get_gateway
from models import CheckoutSession, PaymentIntent
from models.base import utcnow
from models.checkout import CANCELED, EXPIRED

log = logging.getLogger(__name__)

# Checkout statuses after which a payment has nothing left to pay for.
ENDED_STATUSES = (EXPIRED, CANCELED)
ORPHANED_PAYMENT_COMMENT = "billingos: paid after its checkout had ended"


def _orphaned_payment(session: Session, stripe_payment_intent_id: str) -> PaymentIntent | None:
    row = session.execute(
        select(PaymentIntent)
        .where(PaymentIntent.stripe_payment_intent_id == stripe_payment_intent_id)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None or row.status != "succeeded" or row.amount_refunded >= row.amount:
        return None
    if row.checkout_session_id is None:
        return None
    status = session.execute(
        select(CheckoutSession.status).where(CheckoutSession.id == row.checkout_session_id)
    ).scalar_one_or_none()
    return row if status in ENDED_STATUSES else None


def is_orphaned(checkout: CheckoutSession | None, payment_status: str) -> bool:
    """A succeeded payment whose checkout ended (expired or canceled) without it."""
    return (
        checkout is not None and payment_status == "succeeded" and checkout.status in ENDED_STATUSES
    )


def refund_orphaned_payment(stripe_payment_intent_id: str) -> None:
    """Refund (once: the idempotency key is the payment's) and record it. Safe to run twice."""
    with db.transaction() as session:
        if _orphaned_payment(session, stripe_payment_intent_id) is None:
            return
    try:
        get_gateway().refund_payment_intent(
            stripe_payment_intent_id,
            idempotency_key=f"payment:{stripe_payment_intent_id}:refund-orphaned",
            reason="requested_by_customer",
            comment=ORPHANED_PAYMENT_COMMENT,
        )
    except InvalidStripeRequest as error:
        if error.code != "charge_already_refunded":
            raise
    with db.transaction() as session:
        row = _orphaned_payment(session, stripe_payment_intent_id)
        if row is None:
            return
        row.amount_refunded = row.amount
        row.refunded_at = utcnow()
        session.flush()
        recompute_entitlements(session, row.customer_id)
    log.warning(
        "payment %s succeeded after its checkout ended: refunded in full", stripe_payment_intent_id
    )
