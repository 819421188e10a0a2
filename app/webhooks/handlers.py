"""What each Stripe event type does to our rows.

Handlers run inside the inbox transaction (`service.process_stored_event`), with the event row
locked, and never call Stripe there: a handler that needs an object's current state asks
`stripe_sync.fetched`, which either has it (read just before this attempt) or rolls the attempt
back so the object is read with no transaction open and the handler runs again.

They treat an event as a notification about an object, not as the object's latest state
(https://docs.stripe.com/webhooks#event-ordering: delivery order is not guaranteed):

- a PaymentIntent or SetupIntent in a final state (`succeeded`, `canceled`) cannot be stale,
  so it is applied as delivered; in any other state it may have moved on since the event was
  created, so it is re-fetched through the gateway and Stripe's current state is applied;
- a subscription event carries its `created`, and stripe_sync re-fetches when it cannot tell
  whether the payload is newer than what we hold;
- invoices and Stripe Checkout sessions only point at the objects that matter, which are
  re-fetched.

The state changes themselves belong to `app.stripe_sync` (idempotent, row-locking, never
regressing), which the checkout tasks share, so a webhook and a task reporting the same
outcome make one change whichever arrives first.

A handler returns None when it applied the event, or a note when the event is about nothing of
ours (another integration on the same Stripe account, a Stripe Checkout session, a fixture):
such an event is done, not failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, exists, or_, select
from sqlalchemy.orm import Session

from app import settings_of, stripe_sync
from app.entitlements.service import recompute_entitlements
from app.metrics import STRIPE_EVENT_VERSION_MISMATCH
from app.stripe_gateway import CHECKOUT_METADATA, REFETCHABLE_OBJECT_TYPES, get_gateway
from models import CheckoutSession, PaymentIntent, Subscription
from models.base import utcnow

Handler = Callable[[Session, dict[str, Any]], str | None]

# PaymentIntent and SetupIntent statuses after which nothing more happens to the object.
_FINAL_INTENT_STATUSES = frozenset({"succeeded", "canceled"})


def _object(event: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = event["data"]["object"]
    return obj


def _event_created(event: dict[str, Any]) -> datetime | None:
    created = event.get("created")
    return datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None


def _id_of(value: Any) -> str | None:
    """An id from a field that is either the id or the expanded object."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _not_ours(kind: str, stripe_id: str | None) -> str:
    return f"{kind} {stripe_id or '(no id)'} was not created by BillingOS; nothing to do"


# ---------------------------------------------------------------------------- who owns what
#
# "Ours" means one of our rows names the object's Stripe id, or the object's
# `billingos_checkout_id` metadata names one of our checkouts (an event can overtake the task
# that records a new Stripe id). Metadata alone is not enough: another BillingOS deployment on
# the same Stripe account writes the same keys.


def _exists(session: Session, statement: Any) -> bool:
    return session.execute(statement.limit(1)).first() is not None


def _names_our_checkout(session: Session, obj: dict[str, Any]) -> bool:
    metadata = obj.get("metadata")
    raw = metadata.get(CHECKOUT_METADATA) if isinstance(metadata, dict) else None
    if not raw:
        return False
    try:
        checkout_id = uuid.UUID(str(raw))
    except ValueError:
        return False
    return _exists(session, select(CheckoutSession.id).where(CheckoutSession.id == checkout_id))


# Built once: on the event hot path, building the statement cost more CPU than running it.
_KNOWS_PAYMENT_INTENT = select(
    or_(
        exists().where(PaymentIntent.stripe_payment_intent_id == bindparam("stripe_id")),
        exists().where(CheckoutSession.stripe_payment_intent_id == bindparam("stripe_id")),
    )
)


def _knows_payment_intent(session: Session, stripe_id: str | None) -> bool:
    return bool(stripe_id) and bool(
        session.execute(_KNOWS_PAYMENT_INTENT, {"stripe_id": stripe_id}).scalar()
    )


def _knows_setup_intent(session: Session, stripe_id: str | None) -> bool:
    return bool(stripe_id) and _exists(
        session,
        select(CheckoutSession.id).where(CheckoutSession.stripe_setup_intent_id == stripe_id),
    )


def _knows_subscription(session: Session, stripe_id: str | None) -> bool:
    return bool(stripe_id) and (
        _exists(
            session, select(Subscription.id).where(Subscription.stripe_subscription_id == stripe_id)
        )
        or _exists(
            session,
            select(CheckoutSession.id).where(CheckoutSession.stripe_subscription_id == stripe_id),
        )
    )


def lock_checkout_for(
    session: Session,
    *,
    payment_intent_id: str | None = None,
    setup_intent_id: str | None = None,
    subscription_id: str | None = None,
) -> tuple[tuple[uuid.UUID, int], ...]:
    """Lock the checkout an object belongs to; its (id, version) guards a read of that object.

    A state read from Stripe is applied as "now". The read happens between transactions (no
    lock is held across a Stripe call), so it is used only if the checkout has not moved since
    the read was asked for: otherwise a concurrent worker may have applied a newer state, and
    the object is read again (`stripe_sync.fetched`). Lock order: inbox row, checkout, payment,
    subscription — as in stripe_sync.
    """
    conditions = []
    if payment_intent_id:
        conditions.append(CheckoutSession.stripe_payment_intent_id == payment_intent_id)
    if setup_intent_id:
        conditions.append(CheckoutSession.stripe_setup_intent_id == setup_intent_id)
    if subscription_id:
        conditions.append(CheckoutSession.stripe_subscription_id == subscription_id)
    if not conditions:
        return ()
    rows = session.execute(
        select(CheckoutSession.id, CheckoutSession.version)
        .where(or_(*conditions))
        .order_by(CheckoutSession.id)
        .with_for_update()
    ).all()
    return tuple((row.id, row.version) for row in rows)


# ---------------------------------------------------------------------------- intents


def _lock_value(session: Session, column: Any, stripe_column: Any, stripe_id: str) -> Any:
    """Lock our row of a Stripe object (after its checkout) and read the column that guards it."""
    return session.execute(
        select(column).where(stripe_column == stripe_id).with_for_update()
    ).scalar_one_or_none()


def _current_payment_intent(session: Session, stripe_id: str) -> dict[str, Any]:
    checkouts = lock_checkout_for(session, payment_intent_id=stripe_id)
    status = _lock_value(
        session, PaymentIntent.status, PaymentIntent.stripe_payment_intent_id, stripe_id
    )
    return _fetched(
        session,
        ("payment_intent", stripe_id),
        (checkouts, status),
        lambda: get_gateway().retrieve_payment_intent(stripe_id),
    )


def _current_setup_intent(session: Session, stripe_id: str) -> dict[str, Any]:
    checkouts = lock_checkout_for(session, setup_intent_id=stripe_id)
    return _fetched(
        session,
        ("setup_intent", stripe_id),
        checkouts,
        lambda: get_gateway().retrieve_setup_intent(stripe_id),
    )


def _fetched(session: Session, key: tuple[str, str], guard: Any, read: Any) -> dict[str, Any]:
    return dict(stripe_sync.as_dict(stripe_sync.fetched(session, key, guard, read)))


def handle_payment_intent(session: Session, event: dict[str, Any]) -> str | None:
    """`payment_intent.succeeded` / `.payment_failed` / `.canceled` (the checkout of a
    PaymentIntent canceled in the Dashboard or by Stripe is canceled, not left open)."""
    payment_intent = _object(event)
    if not (
        _knows_payment_intent(session, payment_intent.get("id"))
        or _names_our_checkout(session, payment_intent)
    ):
        return _not_ours("PaymentIntent", payment_intent.get("id"))
    if payment_intent.get("status") not in _FINAL_INTENT_STATUSES:
        # A `payment_failed` may be older than a second attempt that is already under way or
        # has succeeded (the buyer tried another card): Stripe's current state decides, or the
        # buyer would briefly see a stale decline.
        payment_intent = _current_payment_intent(session, payment_intent["id"])
    stripe_sync.apply_payment_intent(session, payment_intent)
    return None


def handle_setup_intent(session: Session, event: dict[str, Any]) -> str | None:
    """`setup_intent.succeeded` (a trial's card is saved) / `.setup_failed` (the checkout
    shows the decline)."""
    setup_intent = _object(event)
    if not (
        _knows_setup_intent(session, setup_intent.get("id"))
        or _names_our_checkout(session, setup_intent)
    ):
        return _not_ours("SetupIntent", setup_intent.get("id"))
    if setup_intent.get("status") not in _FINAL_INTENT_STATUSES:
        setup_intent = _current_setup_intent(session, setup_intent["id"])
    stripe_sync.apply_setup_intent(session, setup_intent)
    return None


# ---------------------------------------------------------------------------- subscriptions


def _apply_current_subscription(session: Session, stripe_subscription_id: str) -> None:
    # Re-fetched, so applied as Stripe's state "now" (no event time to compare).
    checkouts = lock_checkout_for(session, subscription_id=stripe_subscription_id)
    version = _lock_value(
        session, Subscription.version, Subscription.stripe_subscription_id, stripe_subscription_id
    )
    subscription = _fetched(
        session,
        ("subscription", stripe_subscription_id),
        (checkouts, version),
        lambda: get_gateway().retrieve_subscription(stripe_subscription_id),
    )
    stripe_sync.apply_subscription(session, subscription)


def handle_subscription(session: Session, event: dict[str, Any]) -> str | None:
    """`customer.subscription.created` / `.updated` / `.deleted`.

    Applied with the event's `created`: stripe_sync keeps the newest state it has seen and,
    when an event is not clearly newer (`created` has one-second resolution), re-fetches the
    subscription instead of trusting the payload.
    """
    subscription = _object(event)
    if not (
        _knows_subscription(session, subscription.get("id"))
        or _names_our_checkout(session, subscription)
    ):
        return _not_ours("Subscription", subscription.get("id"))
    stripe_sync.apply_subscription(session, subscription, event_created=_event_created(event))
    return None


# ---------------------------------------------------------------------------- invoices


def _invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    # In this API version the link is `parent.subscription_details.subscription`.
    # https://docs.stripe.com/changelog/basil/2025-03-31/adds-new-parent-field-to-invoicing-objects
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return _id_of(details.get("subscription"))


def _invoice_payment_intent_ids(invoice: dict[str, Any]) -> list[str] | None:
    """The PaymentIntents in `invoice.payments`, or None when the payload does not include it.

    `payments` is an includable field (https://docs.stripe.com/api/invoices/object#invoice_object-payments):
    webhook payloads usually leave it out.
    """
    payments = invoice.get("payments")
    if not isinstance(payments, dict):
        return None
    ids: list[str] = []
    for invoice_payment in payments.get("data") or []:
        payment = (invoice_payment or {}).get("payment") or {}
        if payment.get("type") == "payment_intent":
            stripe_id = _id_of(payment.get("payment_intent"))
            if stripe_id:
                ids.append(stripe_id)
    return ids


def handle_invoice(session: Session, event: dict[str, Any]) -> str | None:
    """`invoice.paid` / `invoice.payment_failed`: a subscription invoice's payment moved.

    The invoice names its subscription and (when included) its PaymentIntents; both are
    re-fetched and applied, so an invoice event arriving before or after the PaymentIntent's
    and the subscription's own events converges on the same state.
    """
    invoice = _object(event)
    stripe_subscription_id = _invoice_subscription_id(invoice)
    payment_intent_ids = _invoice_payment_intent_ids(invoice)
    subscription_details = (invoice.get("parent") or {}).get("subscription_details") or {}
    ours_by_subscription = _knows_subscription(
        session, stripe_subscription_id
    ) or _names_our_checkout(session, subscription_details)
    ours_by_payment = any(_knows_payment_intent(session, pi) for pi in payment_intent_ids or [])
    if not (ours_by_subscription or ours_by_payment):
        return _not_ours("Invoice", invoice.get("id"))

    if payment_intent_ids is None:
        # Only the list of payments is read from it: nothing to guard.
        fetched = _fetched(
            session,
            ("invoice", invoice["id"]),
            None,
            lambda: get_gateway().retrieve_invoice(invoice["id"], expand=["payments"]),
        )
        payment_intent_ids = _invoice_payment_intent_ids(fetched) or []
    for stripe_payment_intent_id in payment_intent_ids:
        stripe_sync.apply_payment_intent(
            session,
            _current_payment_intent(session, stripe_payment_intent_id),
            invoice_id=invoice["id"],
        )
    if stripe_subscription_id and ours_by_subscription:
        _apply_current_subscription(session, stripe_subscription_id)
    return None


# ---------------------------------------------------------------------------- refunds


def handle_charge_refunded(session: Session, event: dict[str, Any]) -> str | None:
    """`charge.refunded`: record how much of a payment went back to the buyer.

    `amount_refunded` on the charge is cumulative, so applying the largest seen is correct in
    any delivery order. A full refund of a one-time purchase takes its features away: the
    entitlements are recomputed from the payments, which now say so.
    """
    charge = _object(event)
    payment = _lock_payment(session, _id_of(charge.get("payment_intent")))
    if payment is None:
        return _not_ours("Charge", charge.get("id"))
    amount_refunded = min(int(charge.get("amount_refunded") or 0), payment.amount)
    if amount_refunded <= payment.amount_refunded:
        return None
    payment.amount_refunded = amount_refunded
    payment.refunded_at = _event_created(event) or utcnow()
    session.flush()
    recompute_entitlements(session, payment.customer_id)
    return None


def _lock_payment(session: Session, stripe_payment_intent_id: str | None) -> PaymentIntent | None:
    if not stripe_payment_intent_id:
        return None
    return session.execute(
        select(PaymentIntent)
        .where(PaymentIntent.stripe_payment_intent_id == stripe_payment_intent_id)
        .with_for_update()
    ).scalar_one_or_none()


def _apply_current_refunds(
    session: Session, payment: PaymentIntent, charge_id: str, at: datetime | None
) -> None:
    """Set the payment's refunded amount to the charge's current `amount_refunded`."""
    charge = _fetched(
        session,
        ("charge", charge_id),
        payment.amount_refunded,
        lambda: get_gateway().retrieve_charge(charge_id),
    )
    amount_refunded = min(int(charge.get("amount_refunded") or 0), payment.amount)
    if amount_refunded == payment.amount_refunded:
        return
    payment.amount_refunded = amount_refunded
    payment.refunded_at = (at or utcnow()) if amount_refunded else None
    session.flush()
    recompute_entitlements(session, payment.customer_id)


def handle_refund_updated(session: Session, event: dict[str, Any]) -> str | None:
    """`charge.refund.updated`: a refund that failed gave the buyer nothing back.

    The charge is re-fetched: its `amount_refunded` no longer counts the failed refund, and is
    applied even though it is lower than what we recorded (the only way it may go down).
    """
    refund = _object(event)
    payment = _lock_payment(session, _id_of(refund.get("payment_intent")))
    if payment is None:
        return _not_ours("Refund", refund.get("id"))
    charge_id = _id_of(refund.get("charge"))
    if refund.get("status") == "failed" and charge_id is not None:
        _apply_current_refunds(session, payment, charge_id, _event_created(event))
    return None


# Dispute statuses a dispute never leaves (https://docs.stripe.com/api/disputes/object).
_CLOSED_DISPUTE_STATUSES = frozenset({"won", "lost", "prevented"})


def handle_dispute(session: Session, event: dict[str, Any]) -> str | None:
    """`charge.dispute.created` / `.updated` / `.closed`: shown on the payment; a lost
    dispute took the money back, so the payment stops granting its features."""
    dispute = _object(event)
    payment = _lock_payment(session, _id_of(dispute.get("payment_intent")))
    if payment is None:
        return _not_ours("Dispute", dispute.get("id"))
    status = dispute.get("status")
    if not isinstance(status, str) or payment.dispute_status in _CLOSED_DISPUTE_STATUSES:
        return None  # a closed dispute's outcome is final; a late update changes nothing
    if status != payment.dispute_status:
        payment.dispute_status = status
        session.flush()
        recompute_entitlements(session, payment.customer_id)
    return None


# ---------------------------------------------------------------------------- Stripe Checkout


def handle_checkout_session_completed(session: Session, event: dict[str, Any]) -> str | None:
    """`checkout.session.completed`: a notification, never a source of truth.

    BillingOS sells through its own in-app checkout, not Stripe Checkout, so a completed
    Stripe Checkout session is usually someone else's (another integration on the same
    account) and is stored and acknowledged. If it names a PaymentIntent, SetupIntent or
    subscription of ours, that object is re-fetched and applied like its own event.
    """
    checkout = _object(event)
    payment_intent_id = _id_of(checkout.get("payment_intent"))
    setup_intent_id = _id_of(checkout.get("setup_intent"))
    subscription_id = _id_of(checkout.get("subscription"))
    applied = False
    if payment_intent_id and _knows_payment_intent(session, payment_intent_id):
        stripe_sync.apply_payment_intent(
            session, _current_payment_intent(session, payment_intent_id)
        )
        applied = True
    if setup_intent_id and _knows_setup_intent(session, setup_intent_id):
        stripe_sync.apply_setup_intent(session, _current_setup_intent(session, setup_intent_id))
        applied = True
    if subscription_id and _knows_subscription(session, subscription_id):
        _apply_current_subscription(session, subscription_id)
        applied = True
    if not applied:
        return _not_ours("Checkout Session", checkout.get("id"))
    return None


# ---------------------------------------------------------------------------- API versions


def at_our_version(session: Session, event: dict[str, Any]) -> dict[str, Any]:
    """The event with its `data.object` in the API version the gateway pins.

    Stripe renders an event in the endpoint's API version, which need not be ours (an endpoint
    created in the Dashboard, or not yet upgraded); older shapes lack fields we read — an
    invoice's `parent.subscription_details` exists only since 2025-03-31. Such an event is not
    dropped: its object is fetched again at our version (the caller counts the event on
    `billingos_stripe_event_api_version_mismatch_total` once it is applied).
    """
    version = event.get("api_version")
    ours = settings_of(current_app).stripe_api_version
    if not version or version == ours:
        return event
    obj = _object(event)
    object_type, stripe_id = str(obj.get("object")), obj.get("id")
    if not stripe_id or object_type not in REFETCHABLE_OBJECT_TYPES:
        return {**event, "api_version": ours}
    fetched = _fetched(
        session,
        (object_type, str(stripe_id)),
        None,
        lambda: get_gateway().retrieve_object(object_type, str(stripe_id)),
    )
    return {**event, "api_version": ours, "data": {**event["data"], "object": fetched}}


def count_version_mismatch(api_version: str) -> None:
    STRIPE_EVENT_VERSION_MISMATCH.labels(api_version[:40]).inc()


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": handle_payment_intent,
    "payment_intent.payment_failed": handle_payment_intent,
    "payment_intent.canceled": handle_payment_intent,
    "setup_intent.succeeded": handle_setup_intent,
    "setup_intent.setup_failed": handle_setup_intent,
    "invoice.paid": handle_invoice,
    "invoice.payment_failed": handle_invoice,
    "customer.subscription.created": handle_subscription,
    "customer.subscription.updated": handle_subscription,
    "customer.subscription.deleted": handle_subscription,
    "checkout.session.completed": handle_checkout_session_completed,
    "charge.refunded": handle_charge_refunded,
    "charge.refund.updated": handle_refund_updated,
    "charge.dispute.created": handle_dispute,
    "charge.dispute.updated": handle_dispute,
    "charge.dispute.closed": handle_dispute,
}
