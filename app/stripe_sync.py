"""Apply Stripe's truth to our rows.

One place turns a PaymentIntent, SetupIntent or Subscription — fresh from the API, or the
`data.object` of a webhook event (a plain dict) — into changes to `payment_intents`,
`subscriptions` and `checkout_sessions`. The checkout tasks, the webhook handlers and the
reconciler all call these functions, so the flow converges whichever of them hears first.

Rules every function here keeps:

- It locks the rows it changes (`SELECT … FOR UPDATE`) in the one lock order of the codebase
  (docs/architecture.md: inbox event, checkout, payment, subscription, then the customer's
  entitlements), so two appliers of the same news serialize instead of deadlocking.
- It never calls Stripe while it holds a lock. When it needs Stripe's current state, it asks
  `fetched()` for a copy read before the transaction began; if there is none (or the rows it
  guards moved since), `NeedsStripe` rolls the transaction back, the caller reads Stripe with no
  transaction open, and runs the whole transaction again (compare-and-set on row versions).
- It is idempotent: applying the same object twice changes nothing the second time (the
  checkout's `transition()` is a no-op for the same status and fields).
- It never regresses: Stripe delivers events at least once and in no particular order
  (https://docs.stripe.com/webhooks#event-ordering), so a late `processing` never overwrites
  `succeeded`, and a subscription state older than the one we hold is not applied — when the
  order cannot be told (event `created` has whole-second resolution), the subscription is
  re-fetched from Stripe instead (https://docs.stripe.com/webhooks#handle-events-asynchronously).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import stripe
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app import jobs
from app.checkout import refunds
from app.db import db
from app.stripe_gateway import CHECKOUT_METADATA, TransientStripeError, get_gateway
from models import CheckoutSession, Customer, PaymentIntent, ProductPrice, Subscription
from models.base import utcnow
from models.checkout import (
    CANCELED,
    EXPIRED,
    FAILED,
    PROCESSING,
    REQUIRES_ACTION,
    SUCCEEDED,
)
from models.subscription import ENDED_STATUSES

log = logging.getLogger(__name__)

T = TypeVar("T")

# A Stripe object as the gateway returns it (`stripe.StripeObject`, which in stripe-python 16 is
# no longer a dict) or as a webhook event carries it (a plain dict).
StripeObject = Mapping[str, Any] | stripe.StripeObject
Data = Mapping[str, Any]

# PaymentIntent statuses Stripe never leaves (https://docs.stripe.com/payments/paymentintents/lifecycle).
FINAL_PAYMENT_INTENT_STATUSES = frozenset({"succeeded", "canceled"})
# `cancellation_reason` we send when a checkout expires; a cancellation for any other reason
# (the merchant's dashboard, Stripe itself) cancels the checkout instead.
EXPIRY_CANCELLATION_REASON = "abandoned"
# The same for subscriptions, which have no reason code but a free-text comment.
EXPIRY_CANCELLATION_COMMENT = "billingos: checkout expired"
# How far Stripe's clock may be ahead of ours: a state we fetched ourselves is stamped this far
# into the future, so an event created around the fetch counts as "in doubt" and is re-fetched
# rather than trusted.
CLOCK_SKEW = timedelta(seconds=5)


# --------------------------------------------------------------------------- Stripe reads


# `session.info` key of the Stripe objects read for the current transaction (see `fetched`).
STRIPE_READS_KEY = "billingos.stripe_reads"


@dataclass(frozen=True)
class StripeRead:
    # What the locked rows looked like when the read was asked for: the copy is used only while
    # they still look the same, i.e. nothing was applied between the read and its use.
    guard: Any
    value: Any


class NeedsStripe(Exception):
    """A transaction needs Stripe's current state of an object: roll back, read it, run again."""

    def __init__(self, key: tuple[str, str], guard: Any, read: Callable[[], Any]) -> None:
        super().__init__(f"needs a fresh read of {key[0]} {key[1]}")
        self.key = key
        self.guard = guard
        self.read = read

    def perform(self) -> StripeRead:
        """The Stripe call itself: run it with no transaction open."""
        return StripeRead(self.guard, self.read())


def fetched(session: Session, key: tuple[str, str], guard: Any, read: Callable[[], Any]) -> Any:
    """Stripe's state of `key`, read before this transaction while the rows matched `guard`.

    Raises `NeedsStripe` when there is no such read: the caller rolls back, performs it, stores
    the result in `session.info[STRIPE_READS_KEY]` of the next attempt and runs again.
    """
    reads: dict[tuple[str, str], StripeRead] = session.info.get(STRIPE_READS_KEY) or {}
    found = reads.get(key)
    if found is not None and found.guard == guard:
        return found.value
    raise NeedsStripe(key, guard, read)


def transaction_with_stripe_reads(work: Callable[[Session], T], *, rounds: int) -> T:
    """Run `work(session)` in a transaction, again after each Stripe read it lacked.

    Each `NeedsStripe` it raises rolls its transaction back and is answered by a Stripe call
    made with no transaction open; after `rounds` reads the objects are still moving, and
    `ObjectsKeptMoving` asks the caller to try again later.
    """
    reads: dict[tuple[str, str], StripeRead] = {}
    for _ in range(rounds):
        try:
            with db.transaction() as session:
                session.info[STRIPE_READS_KEY] = reads
                return work(session)
        except NeedsStripe as need:
            reads[need.key] = need.perform()
    raise ObjectsKeptMoving(f"Stripe objects kept changing over {rounds} reads; retry later.")


class ObjectsKeptMoving(TransientStripeError):
    """The rows changed under every read: a transient condition, retried like a Stripe outage."""


# --------------------------------------------------------------------------- small readers


def as_dict(obj: StripeObject) -> Mapping[str, Any]:
    """A plain, recursive dict of a Stripe object (event payloads already are)."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return obj


def _id(value: Any) -> str | None:
    """An expandable field: either the id or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    return str(value["id"])


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def _uuid(value: Any) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _metadata(obj: Data) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def checkout_error(error: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Stripe's `last_payment_error`/`last_setup_error`, reduced to the Checkout's `last_error`."""
    if not error:
        return None
    return {
        "code": error.get("code"),
        "decline_code": error.get("decline_code"),
        "message": error.get("message"),
    }


def move_checkout(checkout: CheckoutSession, to: str, **changes: Any) -> bool:
    """Apply news to a checkout if the lifecycle allows it; out-of-order news is dropped."""
    if checkout.status != to and not checkout.can_transition(to):
        log.info(
            "checkout %s: ignoring %s → %s (out of order or final)",
            checkout.id,
            checkout.status,
            to,
        )
        return False
    return checkout.transition(to, **changes)


def _lock_checkout(session: Session, checkout_id: uuid.UUID | None) -> CheckoutSession | None:
    if checkout_id is None:
        return None
    return session.execute(
        select(CheckoutSession)
        .where(CheckoutSession.id == checkout_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _recompute_entitlements(session: Session, customer_id: uuid.UUID) -> None:
    from app.entitlements.service import recompute_entitlements

    recompute_entitlements(session, customer_id)


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


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a Stripe object (StripeObject subclasses dict, but nested)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


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
