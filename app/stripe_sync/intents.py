"""Applying PaymentIntents and SetupIntents to payment rows and checkouts."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app import jobs
from app.checkout import refunds
from app.stripe_gateway import CHECKOUT_METADATA
from app.stripe_sync.checkouts import (
    _lock_checkout,
    _recompute_entitlements,
    checkout_error,
    move_checkout,
)
from app.stripe_sync.objects import (
    EXPIRY_CANCELLATION_REASON,
    FINAL_PAYMENT_INTENT_STATUSES,
    Data,
    StripeObject,
    _id,
    _metadata,
    _plain,
    _uuid,
    as_dict,
)
from models import CheckoutSession, Customer, PaymentIntent, Subscription
from models.base import utcnow
from models.checkout import (
    CANCELED,
    EXPIRED,
    FAILED,
    PROCESSING,
    REQUIRES_ACTION,
    SUCCEEDED,
)

# --------------------------------------------------------------------------- payment intents


def _lock_checkout_naming(column: Any) -> Any:
    return (
        select(CheckoutSession)
        .where(column == bindparam("intent_id"))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


# Built once per column: on the webhook hot path, building a statement costs CPU too.
_LOCK_CHECKOUT_NAMING = {
    column.key: _lock_checkout_naming(column)
    for column in (CheckoutSession.stripe_payment_intent_id, CheckoutSession.stripe_setup_intent_id)
}
_LOCK_PAYMENT_ROW = (
    select(PaymentIntent)
    .where(PaymentIntent.stripe_payment_intent_id == bindparam("stripe_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def _checkout_of_intent(session: Session, column: Any, intent: Data) -> CheckoutSession | None:
    # Found and locked in one statement when the checkout already names the intent (the
    # common case); under READ COMMITTED Postgres re-checks the condition on the locked row.
    checkout = session.execute(
        _LOCK_CHECKOUT_NAMING[column.key], {"intent_id": intent["id"]}
    ).scalar_one_or_none()
    if checkout is not None:
        return checkout
    # A webhook may beat the task that records the intent on the checkout.
    checkout = _lock_checkout(session, _uuid(_metadata(intent).get(CHECKOUT_METADATA)))
    if checkout is None:
        return None
    recorded = getattr(checkout, column.key)
    if recorded is not None and recorded != intent["id"]:
        return None
    return checkout


def _lock_payment_row(
    session: Session,
    payment_intent: Data,
    checkout: CheckoutSession | None,
    invoice_id: str | None,
) -> PaymentIntent | None:
    stripe_id = payment_intent["id"]
    row = session.execute(_LOCK_PAYMENT_ROW, {"stripe_id": stripe_id}).scalar_one_or_none()
    if row is not None:
        return row
    if checkout is not None:
        organization_id, customer_id = checkout.organization_id, checkout.customer_id
    else:
        owner = session.execute(
            select(Customer.organization_id, Customer.id).where(
                Customer.stripe_customer_id == _id(payment_intent.get("customer"))
            )
        ).first()
        if owner is None:
            return None  # not a payment of one of our customers
        organization_id, customer_id = owner
    session.execute(
        insert(PaymentIntent)
        .values(
            id=uuid.uuid4(),
            organization_id=organization_id,
            customer_id=customer_id,
            checkout_session_id=checkout.id if checkout is not None else None,
            stripe_payment_intent_id=stripe_id,
            stripe_invoice_id=invoice_id,
            amount=payment_intent["amount"],
            currency=payment_intent["currency"],
            status=payment_intent["status"],
        )
        .on_conflict_do_nothing(index_elements=[PaymentIntent.stripe_payment_intent_id])
    )
    return session.execute(_LOCK_PAYMENT_ROW, {"stripe_id": stripe_id}).scalar_one()


def _update_payment_row(row: PaymentIntent, payment_intent: Data) -> bool:
    """Record Stripe's view of the payment, never leaving a final status. Returns `changed`."""
    status = payment_intent["status"]
    if row.status in FINAL_PAYMENT_INTENT_STATUSES and status != row.status:
        return False
    before = (row.status, row.amount, row.currency, row.last_error, row.succeeded_at)
    row.status = status
    row.amount = payment_intent["amount"]
    row.currency = payment_intent["currency"]
    error = checkout_error(payment_intent.get("last_payment_error"))
    if status == "succeeded":
        row.last_error = None
        if row.succeeded_at is None:
            row.succeeded_at = utcnow()
    elif error is not None:
        row.last_error = error
    return before != (row.status, row.amount, row.currency, row.last_error, row.succeeded_at)


def apply_payment_intent(
    session: Session, payment_intent: StripeObject, *, invoice_id: str | None = None
) -> None:
    """Record a PaymentIntent in the payment history and move its checkout accordingly."""
    payment_intent = as_dict(payment_intent)
    checkout = _checkout_of_intent(
        session, CheckoutSession.stripe_payment_intent_id, payment_intent
    )
    row = _lock_payment_row(session, payment_intent, checkout, invoice_id)
    if row is None:
        return
    if invoice_id is not None and row.stripe_invoice_id is None:
        row.stripe_invoice_id = invoice_id
    changed = _update_payment_row(row, payment_intent)
    # Our row may hold a final status that this (late) object does not: act on ours.
    status = row.status
    if checkout is not None:
        _move_checkout_for_payment(checkout, payment_intent, status)
    if changed and status == "succeeded":
        _recompute_entitlements(session, row.customer_id)
        if refunds.is_orphaned(checkout, status):
            # Paid after the checkout ended (expired or canceled): the buyer gets it back.
            jobs.enqueue_after_commit(
                session, jobs.CHECKOUT_REFUND_ORPHANED_PAYMENT, row.stripe_payment_intent_id
            )


def _move_checkout_for_payment(
    checkout: CheckoutSession, payment_intent: Data, status: str
) -> None:
    if checkout.stripe_payment_intent_id is None:
        checkout.stripe_payment_intent_id = payment_intent["id"]
    pays_subscription = checkout.stripe_subscription_id is not None
    if status == "succeeded":
        if pays_subscription:
            # Paid, but the checkout succeeds only once the subscription is active: that news
            # comes from `apply_subscription`.
            move_checkout(checkout, PROCESSING, next_action=None, last_error=None)
        else:
            move_checkout(checkout, SUCCEEDED, next_action=None, last_error=None)
    elif status == "requires_action":
        move_checkout(
            checkout,
            REQUIRES_ACTION,
            next_action=_plain(payment_intent.get("next_action")),
            last_error=None,
        )
    elif status == "processing":
        move_checkout(checkout, PROCESSING, next_action=None)
    elif status == "requires_payment_method" and payment_intent.get("last_payment_error"):
        move_checkout(
            checkout,
            FAILED,
            next_action=None,
            last_error=checkout_error(payment_intent.get("last_payment_error")),
        )
    elif status == "canceled":
        reason = payment_intent.get("cancellation_reason")
        move_checkout(checkout, EXPIRED if reason == EXPIRY_CANCELLATION_REASON else CANCELED)


# --------------------------------------------------------------------------- setup intents


def apply_setup_intent(session: Session, setup_intent: StripeObject) -> None:
    """Move a trial checkout along with the SetupIntent that collects its card."""
    setup_intent = as_dict(setup_intent)
    checkout = _checkout_of_intent(session, CheckoutSession.stripe_setup_intent_id, setup_intent)
    if checkout is None:
        return
    if checkout.stripe_setup_intent_id is None:
        checkout.stripe_setup_intent_id = setup_intent["id"]
    status = setup_intent["status"]
    if status == "succeeded":
        subscription = session.execute(
            select(Subscription)
            .where(Subscription.checkout_session_id == checkout.id)
            .with_for_update()
        ).scalar_one_or_none()
        if subscription is not None and subscription.status in ("trialing", "active"):
            move_checkout(checkout, SUCCEEDED, next_action=None, last_error=None)
        else:
            move_checkout(checkout, PROCESSING, next_action=None, last_error=None)
    elif status == "requires_action":
        move_checkout(
            checkout,
            REQUIRES_ACTION,
            next_action=_plain(setup_intent.get("next_action")),
            last_error=None,
        )
    elif status == "processing":
        move_checkout(checkout, PROCESSING, next_action=None)
    elif status == "requires_payment_method" and setup_intent.get("last_setup_error"):
        move_checkout(
            checkout,
            FAILED,
            next_action=None,
            last_error=checkout_error(setup_intent.get("last_setup_error")),
        )
    elif status == "canceled":
        reason = setup_intent.get("cancellation_reason")
        move_checkout(checkout, EXPIRED if reason == EXPIRY_CANCELLATION_REASON else CANCELED)
