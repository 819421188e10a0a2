"""The Stripe side of a checkout: prepare, confirm, expire and reconcile.

These are the bodies of the `checkout.*` tasks (tasks/checkout.py adds the retry policy). Each
takes our ids, reads what it needs under a row lock, calls Stripe with no transaction open (a
slow Stripe must not hold Postgres locks), then applies Stripe's answer through
`app.stripe_sync` in a fresh transaction. Every step is safe to run twice: the state check at
the start makes a repeat a no-op, and the idempotency keys make a repeated Stripe call return
the first call's object.

Transient failures (`TransientStripeError`, database connection errors) propagate to the task,
which retries with backoff; each run is counted in `prepare_attempts` / `confirm_attempts`,
and past `MAX_ATTEMPTS` the checkout shows `failed` with `last_error.code = stripe_unavailable`
instead of staying `pending`/`processing` forever.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.catalog.mirror import ensure_stripe_price
from app.db import db
from app.stripe_gateway import (
    InvalidStripeRequest,
    PaymentDeclined,
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
    apply_setup_intent,
    apply_subscription,
    as_dict,
    move_checkout,
)
from app.subscriptions.trials import had_trial
from models import CheckoutSession, Customer, PaymentIntent
from models.base import utcnow
from models.checkout import EXPIRED, FAILED, OPEN, PENDING, PROCESSING

log = logging.getLogger(__name__)

# Runs of one task per checkout before it gives up (with backoff this spans about 15 s).
MAX_ATTEMPTS = 6

UNAVAILABLE_MESSAGE = "The payment provider could not be reached. Please try again."
# A checkout whose subscription could not be recorded because the buyer already holds a live
# subscription to the product (two checkouts with different idempotency keys raced).
ALREADY_SUBSCRIBED_ERROR = {
    "code": "already_subscribed",
    "decline_code": None,
    "message": "You already have an active subscription to this product.",
}

EXPIRABLE_STATUSES = ("pending", "open", "requires_action", "failed")


def _unavailable() -> dict[str, Any]:
    return {"code": "stripe_unavailable", "decline_code": None, "message": UNAVAILABLE_MESSAGE}


def _lock(session: Session, checkout_id: uuid.UUID) -> CheckoutSession | None:
    return session.execute(
        select(CheckoutSession)
        .where(CheckoutSession.id == checkout_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


# --------------------------------------------------------------------------- prepare


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


# --------------------------------------------------------------------------- confirm


def confirm_checkout(
    checkout_id: uuid.UUID,
    confirmation: int,
    *,
    payment_method: str | None = None,
    confirmation_token: str | None = None,
) -> None:
    """Confirm a `processing` checkout's intent with the buyer's payment method.

    `confirmation` numbers the buyer's confirmations of this checkout (the checkout version at
    which it entered `processing`): retries of one confirmation share the idempotency key
    `checkout:{id}:confirm:{confirmation}`; a new card after a decline gets a new one.
    """
    with db.transaction() as session:
        checkout = _lock(session, checkout_id)
        if checkout is None or checkout.status != PROCESSING:
            return
        checkout.confirm_attempts += 1
        if checkout.confirm_attempts > MAX_ATTEMPTS:
            checkout.transition(FAILED, last_error=_unavailable())
            return
        intent_type = checkout.intent_type
        payment_intent_id = checkout.stripe_payment_intent_id
        setup_intent_id = checkout.stripe_setup_intent_id
    gateway = get_gateway()
    # Renewed only after a failure Stripe stored under it (app/stripe_keys.py): a replayed 500
    # would otherwise fail the buyer's confirmation on every retry.
    scope = f"checkout:{checkout_id}:confirm:{confirmation}"
    intent: Any = None
    refusal: dict[str, Any] | None = None
    try:
        if intent_type == "setup" and setup_intent_id:
            setup_id = setup_intent_id
            intent = with_renewable_key(
                scope,
                lambda key: gateway.confirm_setup_intent(
                    setup_id,
                    idempotency_key=key,
                    payment_method=payment_method,
                    confirmation_token=confirmation_token,
                ),
            )
        elif payment_intent_id:
            payment_id = payment_intent_id
            intent = with_renewable_key(
                scope,
                lambda key: gateway.confirm_payment_intent(
                    payment_id,
                    idempotency_key=key,
                    payment_method=payment_method,
                    confirmation_token=confirmation_token,
                ),
            )
        else:
            refusal = {
                "code": "checkout_not_confirmable",
                "decline_code": None,
                "message": "This checkout has nothing to confirm.",
            }
    except PaymentDeclined as declined:
        intent = declined.stripe_object
        refusal = declined.as_checkout_error()
    except InvalidStripeRequest as invalid:
        # E.g. the intent was already confirmed with Stripe.js (the 3-D Secure path) or the
        # payment method is unusable: Stripe's current view of the intent decides below.
        intent = invalid.stripe_object
        refusal = {"code": invalid.code, "decline_code": None, "message": invalid.message}
    refresh_checkout(checkout_id, intent=intent, refusal=refusal)


# --------------------------------------------------------------------------- reconcile


def refresh_checkout(
    checkout_id: uuid.UUID,
    *,
    intent: Any = None,
    refusal: dict[str, Any] | None = None,
) -> None:
    """Apply Stripe's current view of a checkout's intent (and subscription) to our rows.

    `intent` is an intent Stripe just returned (saves a round trip); otherwise it is fetched.
    `refusal` is the error Stripe answered a confirmation with: if Stripe's objects do not move
    the checkout out of `processing`, the checkout fails with it.

    The reconciler calls this for checkouts stuck in `processing` (a lost webhook or task).
    """
    with db.transaction() as session:
        checkout = session.get(CheckoutSession, checkout_id)
        if checkout is None:
            return
        intent_type = checkout.intent_type
        payment_intent_id = checkout.stripe_payment_intent_id
        setup_intent_id = checkout.stripe_setup_intent_id
        subscription_id = checkout.stripe_subscription_id
    if intent is not None and not isinstance(intent, dict):
        intent = as_dict(intent)
    if intent is None:
        intent = _current_intent(intent_type, payment_intent_id, setup_intent_id)
    gateway = get_gateway()
    subscription = None
    if subscription_id is not None and (intent is None or intent.get("status") == "succeeded"):
        subscription = gateway.retrieve_subscription(subscription_id)
    with db.transaction() as session:
        if intent is not None:
            if intent.get("object") == "setup_intent":
                apply_setup_intent(session, intent)
            else:
                apply_payment_intent(session, intent)
        if subscription is not None:
            apply_subscription(session, subscription)
        checkout = _lock(session, checkout_id)
        if checkout is not None and refusal is not None and checkout.status == PROCESSING:
            checkout.transition(FAILED, next_action=None, last_error=refusal)


def settle_stuck_checkout(checkout_id: uuid.UUID) -> None:
    """Drive a checkout the reconciler found unchanged for a while towards a final state.

    - `pending`: its `checkout.prepare` message was lost, or every run failed: prepare again,
      with the same idempotency keys (Stripe returns what an earlier run already made). Each
      run counts in `prepare_attempts`, so a Stripe that stays down ends it `failed`, and a
      permanent refusal ends it `failed` with Stripe's error at once.
    - `processing` while Stripe says nothing happened to the intent (no confirmation reached
      it: the `checkout.confirm` message was lost): send the buyer's confirmation again, under
      the same key `checkout:{id}:confirm:{confirmation}`; bounded by `confirm_attempts`.
    - otherwise: apply Stripe's current view (a lost webhook).
    """
    with db.transaction() as session:
        checkout = session.get(CheckoutSession, checkout_id)
        if checkout is None:
            return
        status = checkout.status
        confirmation = checkout.confirmation
        payment_method = checkout.confirm_payment_method
        confirmation_token = checkout.confirm_confirmation_token
        intent_type = checkout.intent_type
        payment_intent_id = checkout.stripe_payment_intent_id
        setup_intent_id = checkout.stripe_setup_intent_id
    if status == PENDING:
        prepare_checkout(checkout_id)
        return
    intent = _current_intent(intent_type, payment_intent_id, setup_intent_id)
    if status == PROCESSING and confirmation is not None and _never_confirmed(intent):
        log.info("checkout %s: its confirmation never reached Stripe; sending it", checkout_id)
        confirm_checkout(
            checkout_id,
            confirmation,
            payment_method=payment_method,
            confirmation_token=confirmation_token,
        )
        return
    refresh_checkout(checkout_id, intent=intent)


def _current_intent(
    intent_type: str | None, payment_intent_id: str | None, setup_intent_id: str | None
) -> Mapping[str, Any] | None:
    """The checkout's intent as Stripe has it now (None while it has none)."""
    gateway = get_gateway()
    if intent_type == "setup" and setup_intent_id:
        return as_dict(gateway.retrieve_setup_intent(setup_intent_id))
    if payment_intent_id:
        return as_dict(gateway.retrieve_payment_intent(payment_intent_id))
    return None


def _never_confirmed(intent: Any) -> bool:
    """Stripe's intent shows no confirmation attempt (or there is no intent to show one)."""
    if intent is None:
        return True
    if intent.get("status") == "requires_confirmation":
        return True
    error = intent.get("last_payment_error") or intent.get("last_setup_error")
    return intent.get("status") == "requires_payment_method" and not error


# --------------------------------------------------------------------------- give up


def give_up(checkout_id: uuid.UUID, stage: str) -> None:
    """After the last transient failure: show a clear error instead of hanging."""
    waiting_status = PENDING if stage == "prepare" else PROCESSING
    with db.transaction() as session:
        checkout = _lock(session, checkout_id)
        if checkout is not None and checkout.status == waiting_status:
            checkout.transition(FAILED, next_action=None, last_error=_unavailable())


def attempts(checkout_id: uuid.UUID, stage: str) -> int:
    column = (
        CheckoutSession.prepare_attempts if stage == "prepare" else CheckoutSession.confirm_attempts
    )
    with db.transaction() as session:
        value = session.execute(
            select(column).where(CheckoutSession.id == checkout_id)
        ).scalar_one_or_none()
    return int(value or 0)


# --------------------------------------------------------------------------- expire


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
