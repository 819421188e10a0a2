"""Prepare: the Stripe customer, then the PaymentIntent or subscription a checkout pays with."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from app.catalog.mirror import ensure_stripe_price
from app.checkout.stripe_steps.attempts import (
    ALREADY_SUBSCRIBED_ERROR,
    MAX_ATTEMPTS,
    _lock,
    _unavailable,
)
from app.db import db
from app.stripe_gateway import (
    InvalidStripeRequest,
    StripeGatewayError,
    customer_create_key,
    get_gateway,
    payment_intent_id_from_client_secret,
    prepare_key,
)
from app.stripe_keys import with_renewable_key
from app.stripe_sync import (
    EXPIRY_CANCELLATION_COMMENT,
    EXPIRY_CANCELLATION_REASON,
    apply_payment_intent,
    apply_subscription,
    as_dict,
)
from app.subscriptions.trials import had_trial
from models import Customer, PaymentIntent
from models.base import utcnow
from models.checkout import EXPIRED, FAILED, OPEN, PENDING

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _PrepareInput:
    checkout_id: uuid.UUID
    organization_id: uuid.UUID
    customer_id: uuid.UUID
    price_id: uuid.UUID
    quantity: int
    amount: int
    currency: str
    recurring: bool
    trial_period_days: int | None
    receipt_email: str | None
    product_name: str


def prepare_checkout(checkout_id: uuid.UUID) -> None:
    """Create the Stripe customer and intent of a `pending` checkout and open it."""
    with db.transaction() as session:
        checkout = _lock(session, checkout_id)
        if checkout is None or checkout.status != PENDING:
            return
        if checkout.is_expired_at(utcnow()):
            checkout.transition(EXPIRED)
            return
        checkout.prepare_attempts += 1
        if checkout.prepare_attempts > MAX_ATTEMPTS:
            checkout.transition(FAILED, last_error=_unavailable())
            return
        price = checkout.price
        job = _PrepareInput(
            checkout_id=checkout.id,
            organization_id=checkout.organization_id,
            customer_id=checkout.customer_id,
            price_id=checkout.price_id,
            quantity=checkout.quantity,
            amount=checkout.amount,
            currency=checkout.currency,
            recurring=price.is_recurring,
            # A second trial of the same product is not given: the first period is billed.
            trial_period_days=(
                None
                if had_trial(session, checkout.customer_id, checkout.product_id)
                else price.trial_period_days
            ),
            receipt_email=checkout.customer_email,
            product_name=checkout.product.name,
        )
    try:
        stripe_customer_id = ensure_stripe_customer(job.customer_id)
        if job.recurring:
            _prepare_subscription(job, stripe_customer_id)
        else:
            _prepare_payment(job, stripe_customer_id)
    except InvalidStripeRequest as refused:
        # Permanent: the same request can never succeed, so the checkout ends with Stripe's
        # own reason instead of waiting in `pending` until it expires.
        _fail_pending(checkout_id, refused)


def _fail_pending(checkout_id: uuid.UUID, refused: InvalidStripeRequest) -> None:
    log.warning("checkout %s: Stripe refused to prepare it: %s", checkout_id, refused.code)
    with db.transaction() as session:
        checkout = _lock(session, checkout_id)
        if checkout is not None and checkout.status == PENDING:
            checkout.transition(
                FAILED,
                last_error={
                    "code": refused.code or "stripe_error",
                    "decline_code": None,
                    "message": refused.message,
                },
            )


def ensure_stripe_customer(customer_id: uuid.UUID) -> str:
    """Our customer's Stripe customer, created once even when two checkouts race.

    Both racers send the same idempotency key (derived from the customer), so Stripe makes one
    customer; the id is stored only where none is stored yet.
    """
    with db.transaction() as session:
        customer = session.execute(
            select(
                Customer.organization_id,
                Customer.external_id,
                Customer.email,
                Customer.name,
                Customer.stripe_customer_id,
            ).where(Customer.id == customer_id)
        ).one()
    if customer.stripe_customer_id:
        return str(customer.stripe_customer_id)
    stripe_customer_id = with_renewable_key(
        customer_create_key(customer_id),
        lambda key: get_gateway().ensure_customer(
            customer_id=customer_id,
            organization_id=customer.organization_id,
            external_id=customer.external_id,
            email=customer.email,
            name=customer.name,
            idempotency_key=key,
        ),
    )
    with db.transaction() as session:
        session.execute(
            update(Customer)
            .where(Customer.id == customer_id, Customer.stripe_customer_id.is_(None))
            .values(stripe_customer_id=stripe_customer_id)
        )
        stored = session.execute(
            select(Customer.stripe_customer_id).where(Customer.id == customer_id)
        ).scalar_one()
    return str(stored)


def _prepare_payment(job: _PrepareInput, stripe_customer_id: str) -> None:
    gateway = get_gateway()
    payment_intent = with_renewable_key(
        prepare_key(job.checkout_id),
        lambda key: gateway.create_payment_intent(
            idempotency_key=key,
            checkout_id=job.checkout_id,
            organization_id=job.organization_id,
            stripe_customer_id=stripe_customer_id,
            amount=job.amount,
            currency=job.currency,
            description=job.product_name,
            receipt_email=job.receipt_email,
        ),
    )
    with db.transaction() as session:
        checkout = _lock(session, job.checkout_id)
        if checkout is None or checkout.status != PENDING:
            opened = False
        else:
            checkout.transition(
                OPEN,
                intent_type="payment",
                client_secret=payment_intent.client_secret,
                stripe_payment_intent_id=payment_intent.id,
            )
            apply_payment_intent(session, payment_intent)
            opened = True
    if not opened:
        _release_payment_intent(job.checkout_id, payment_intent.id)


def _prepare_subscription(job: _PrepareInput, stripe_customer_id: str) -> None:
    stripe_price_id = ensure_stripe_price(job.price_id)
    subscription = with_renewable_key(
        prepare_key(job.checkout_id),
        lambda key: get_gateway().create_subscription(
            idempotency_key=key,
            checkout_id=job.checkout_id,
            organization_id=job.organization_id,
            stripe_customer_id=stripe_customer_id,
            stripe_price_id=stripe_price_id,
            quantity=job.quantity,
            trial_period_days=job.trial_period_days,
        ),
    )
    data = as_dict(subscription)
    changes: dict[str, Any] = {"stripe_subscription_id": data["id"]}
    first_payment: dict[str, Any] | None = None
    invoice_id: str | None = None
    setup_intent = data.get("pending_setup_intent")
    if job.trial_period_days:
        changes["intent_type"] = "setup"
        if isinstance(setup_intent, dict):
            changes["client_secret"] = setup_intent["client_secret"]
            changes["stripe_setup_intent_id"] = setup_intent["id"]
    else:
        changes["intent_type"] = "payment"
        invoice = data.get("latest_invoice")
        secret = (invoice or {}).get("confirmation_secret") if isinstance(invoice, dict) else None
        if secret and secret.get("client_secret"):
            assert isinstance(invoice, dict)
            invoice_id = invoice["id"]
            changes["client_secret"] = secret["client_secret"]
            payment_intent_id = payment_intent_id_from_client_secret(secret["client_secret"])
            changes["stripe_payment_intent_id"] = payment_intent_id
            # The first invoice's PaymentIntent, as Stripe creates it for `default_incomplete`
            # (awaiting a payment method); recorded now so the payment history has it, then
            # kept current by its webhooks and our confirmation.
            first_payment = {
                "id": payment_intent_id,
                "object": "payment_intent",
                "amount": invoice["amount_due"],
                "currency": invoice["currency"],
                "status": "requires_payment_method",
                "customer": stripe_customer_id,
                "metadata": {},
            }
    release = False
    with db.transaction() as session:
        checkout = _lock(session, job.checkout_id)
        if checkout is None or checkout.status != PENDING:
            release = checkout is not None and checkout.stripe_subscription_id != data["id"]
        else:
            checkout.transition(OPEN, **changes)
            if first_payment is not None:
                apply_payment_intent(session, first_payment, invoice_id=invoice_id)
            row = apply_subscription(session, subscription)
            if row is None:
                checkout.transition(FAILED, last_error=ALREADY_SUBSCRIBED_ERROR)
                release = True
            elif first_payment is not None and row.payment_intent_id is None:
                row.payment_intent_id = session.execute(
                    select(PaymentIntent.id).where(
                        PaymentIntent.stripe_payment_intent_id == first_payment["id"]
                    )
                ).scalar_one()
    if release:
        _release_subscription(job.checkout_id, data["id"])


def _release_payment_intent(checkout_id: uuid.UUID, stripe_payment_intent_id: str) -> None:
    """Cancel an intent made for a checkout that ended before it could be opened."""
    try:
        get_gateway().cancel_payment_intent(
            stripe_payment_intent_id,
            idempotency_key=f"checkout:{checkout_id}:release",
            reason=EXPIRY_CANCELLATION_REASON,
        )
    except StripeGatewayError:
        log.warning("checkout %s: could not cancel its unused PaymentIntent", checkout_id)


def _release_subscription(checkout_id: uuid.UUID, stripe_subscription_id: str) -> None:
    try:
        get_gateway().cancel_subscription(
            stripe_subscription_id,
            idempotency_key=f"checkout:{checkout_id}:release",
            comment=EXPIRY_CANCELLATION_COMMENT,
        )
    except StripeGatewayError:
        log.warning("checkout %s: could not cancel its unused subscription", checkout_id)
