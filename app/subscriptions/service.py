"""A customer's subscriptions: listing, direct creation where nothing is owed, cancellation.

Subscription state is Stripe's: every change here is a Stripe call whose answer is applied to
our row through `app.stripe_sync.apply_subscription`, the same function the webhooks use, so
the row and the entitlements derived from it follow one path whoever hears first.

Upgrades between prices of one product (monthly → yearly) are refused with 409
`already_subscribed`: a customer holds one live subscription per product (a unique index), and
the plan change belongs to the Stripe billing portal (`POST /v1/portal-session`), where Stripe
prorates it; its `customer.subscription.updated` moves our row to the new price.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import stripe_sync
from app.auth import CustomerPrincipal
from app.catalog.mirror import ensure_stripe_price
from app.catalog.service import PriceNotFound, get_active_price
from app.checkout.service import AlreadySubscribed
from app.checkout.stripe_steps import ensure_stripe_customer
from app.db import db
from app.errors import ApiError, Conflict, NotFound, ServiceUnavailable
from app.pagination import ListQuery, paginate
from app.stripe_gateway import (
    InvalidStripeRequest,
    StripeGateway,
    StripeGatewayError,
    TransientStripeError,
    get_gateway,
)
from app.subscriptions.trials import had_trial
from models import CheckoutSession, Customer, Subscription
from models.base import utcnow
from models.checkout import OPEN, PENDING, PROCESSING, REQUIRES_ACTION
from models.subscription import ENDED_STATUSES, LIVE_STATUSES

if TYPE_CHECKING:
    # Annotations only: Stripe is called through the gateway (an import-linter contract).
    import stripe

log = logging.getLogger(__name__)


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"
    title = "Subscription not found"


class PaymentRequired(ApiError):
    status = 402
    code = "payment_required"
    title = "Payment required"


class SubscriptionNotCancelable(Conflict):
    code = "subscription_not_cancelable"
    title = "Subscription already ended"


class StripeUnavailable(ServiceUnavailable):
    code = "stripe_unavailable"
    title = "Stripe unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class StripeRejected(ApiError):
    status = 502
    code = "stripe_error"
    title = "Stripe refused the request"


def stripe_failure(error: StripeGatewayError) -> ApiError:
    """The API error for a gateway failure: retry later, or a problem on our side."""
    if isinstance(error, TransientStripeError):
        return StripeUnavailable("Stripe did not answer in time; retry in a few seconds.")
    return StripeRejected("Stripe refused the request; nothing was changed.")


UPGRADE_DETAIL = (
    "The customer already has a live subscription to this product. To move to another of its "
    "prices, open the billing portal (POST /v1/portal-session), where Stripe prorates the "
    "change; or cancel the current subscription first."
)


# --------------------------------------------------------------------------- reading


def list_customer_subscriptions(
    organization_id: uuid.UUID, customer_id: uuid.UUID, query: ListQuery
) -> tuple[list[Subscription], bool]:
    """One page of the customer's subscriptions, newest first."""
    in_customer = Subscription.customer_id == customer_id
    stmt = select(Subscription).where(in_customer)
    return paginate(stmt, Subscription, query, organization_id, cursor_scope=[in_customer])


def live_subscriptions(session: Session, customer_id: uuid.UUID) -> list[Subscription]:
    """The subscriptions that still bill or grant (one per product at most), newest first."""
    stmt = (
        select(Subscription)
        .where(Subscription.customer_id == customer_id, Subscription.status.in_(LIVE_STATUSES))
        .order_by(Subscription.created_at.desc())
    )
    return list(session.execute(stmt).scalars())


def get_customer_subscription(
    session: Session, customer_id: uuid.UUID, subscription_id: uuid.UUID
) -> Subscription:
    """The customer's subscription; another customer's is as absent as a missing one."""
    stmt = select(Subscription).where(
        Subscription.id == subscription_id, Subscription.customer_id == customer_id
    )
    subscription = session.execute(stmt).scalar_one_or_none()
    if subscription is None:
        raise SubscriptionNotFound("No such subscription.")
    return subscription


def live_subscription(
    session: Session, customer_id: uuid.UUID, product_id: uuid.UUID
) -> Subscription | None:
    """The customer's live subscription to `product_id` (at most one: a unique index)."""
    return session.execute(
        select(Subscription).where(
            Subscription.customer_id == customer_id,
            Subscription.product_id == product_id,
            Subscription.status.in_(LIVE_STATUSES),
        )
    ).scalar_one_or_none()


# --------------------------------------------------------------------------- creating


def _parse_price_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise PriceNotFound("No such price, or it is no longer for sale.") from None


# A direct subscription's row is made before Stripe's object and waits, `incomplete` and without
# a Stripe id, for Stripe's answer. A retry within this window reuses it (and so its idempotency
# key: Stripe answers with the subscription it already made); an older one is past Stripe's 24 h
# idempotency window and is expired instead.
PENDING_REUSE_WINDOW = timedelta(hours=23)
# A checkout of the product in one of these may still make it live: no direct subscription then.
UNFINISHED_CHECKOUT_STATUSES = (PENDING, OPEN, PROCESSING, REQUIRES_ACTION)

CHECKOUT_IN_PROGRESS_DETAIL = (
    "A checkout of this product is in progress for the customer; finish or abandon it first."
)


@dataclass(frozen=True)
class _DirectPrice:
    id: uuid.UUID
    product_id: uuid.UUID
    is_free: bool
    trial_period_days: int | None


def _refuse_if_not_allowed(session: Session, customer_id: uuid.UUID, price: _DirectPrice) -> None:
    """409/402 for what must not be subscribed directly right now."""
    if live_subscription(session, customer_id, price.product_id) is not None:
        raise AlreadySubscribed(UPGRADE_DETAIL)
    if _checkout_in_progress(session, customer_id, price.product_id):
        raise AlreadySubscribed(CHECKOUT_IN_PROGRESS_DETAIL)
    if not price.is_free and had_trial(session, customer_id, price.product_id):
        raise PaymentRequired(
            "The trial of this product was already used: subscribe through a checkout "
            "(POST /v1/checkout/create)."
        )


def _checkout_in_progress(session: Session, customer_id: uuid.UUID, product_id: uuid.UUID) -> bool:
    # A pending/open checkout past `expires_at` can no longer be paid (the sweeper has not
    # reached it yet); a processing one may still succeed, whatever the clock says.
    now = utcnow()
    found = session.execute(
        select(CheckoutSession.id)
        .where(
            CheckoutSession.customer_id == customer_id,
            CheckoutSession.product_id == product_id,
            CheckoutSession.status.in_(UNFINISHED_CHECKOUT_STATUSES),
            or_(
                CheckoutSession.status.in_((PROCESSING, REQUIRES_ACTION)),
                CheckoutSession.expires_at > now,
            ),
        )
        .limit(1)
    ).first()
    return found is not None


def _pending_direct_rows(customer_id: uuid.UUID, price_id: uuid.UUID) -> Any:
    return (
        select(Subscription)
        .where(
            Subscription.customer_id == customer_id,
            Subscription.price_id == price_id,
            Subscription.status == "incomplete",
            Subscription.stripe_subscription_id.is_(None),
            Subscription.checkout_session_id.is_(None),
        )
        .order_by(Subscription.created_at.desc())
    )


def _lock_customer(session: Session, customer_id: uuid.UUID) -> None:
    # `FOR NO KEY UPDATE`: inserts of this customer's payments and subscriptions (their foreign
    # key takes `FOR KEY SHARE`) do not wait for it.
    session.execute(
        select(Customer.id).where(Customer.id == customer_id).with_for_update(key_share=True)
    )


def _claim_direct_row(principal: CustomerPrincipal, price: _DirectPrice) -> uuid.UUID:
    """Our row for the attempt, committed before Stripe is called; its id keys the Stripe call.

    The customer row is locked only for this short transaction (no network inside it), so two
    concurrent attempts serialize here: the second finds the first's pending row and reuses it
    — the same key, so Stripe makes one subscription for both.
    """
    with db.transaction() as session:
        _lock_customer(session, principal.customer_id)
        _refuse_if_not_allowed(session, principal.customer_id, price)
        now = utcnow()
        reusable: Subscription | None = None
        for row in session.execute(
            _pending_direct_rows(principal.customer_id, price.id).with_for_update()
        ).scalars():
            if reusable is None and row.created_at > now - PENDING_REUSE_WINDOW:
                reusable = row
            else:
                row.status = "incomplete_expired"
                row.ended_at = now
        if reusable is None:
            reusable = Subscription(
                organization_id=principal.organization_id,
                customer_id=principal.customer_id,
                product_id=price.product_id,
                price_id=price.id,
                status="incomplete",
            )
            session.add(reusable)
            session.flush()
        return reusable.id


def _abandon_direct_row(subscription_id: uuid.UUID) -> None:
    """Stripe refused to make the subscription: our row ends, and blocks nothing."""
    with db.transaction() as session:
        row = session.execute(
            select(Subscription)
            .where(Subscription.id == subscription_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        if row.stripe_subscription_id is None and row.status == "incomplete":
            row.status = "incomplete_expired"
            row.ended_at = utcnow()


def _record_direct_subscription(
    subscription_id: uuid.UUID, stripe_subscription: stripe.Subscription
) -> Subscription:
    """Link our row to Stripe's object and apply its state (entitlements follow).

    The customer row is locked first, as `_claim_direct_row` does: the entitlements that
    follow update it, and taking it last here would invert the claim's customer → subscription
    order.
    """
    with db.transaction() as session:
        customer_id = session.execute(
            select(Subscription.customer_id).where(Subscription.id == subscription_id)
        ).scalar_one()
        _lock_customer(session, customer_id)
        row = session.execute(
            select(Subscription)
            .where(Subscription.id == subscription_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        if row.stripe_subscription_id is None:
            row.stripe_subscription_id = stripe_subscription.id
            session.flush()
        # `apply_subscription` recomputes the entitlements when the row changed.
        applied = stripe_sync.apply_subscription(session, stripe_subscription)
        assert applied is row
        session.flush()
        session.refresh(row)  # everything loaded: the caller serializes it after the commit
    return row


def create_direct_subscription(principal: CustomerPrincipal, raw_price_id: str) -> Subscription:
    """Subscribe the customer to a free price, or start a card-less trial, with no checkout.

    Anything that owes money today (a paid price without a trial, a one-time price, a second
    trial of the same product) needs a checkout: 402 `payment_required`. A live subscription
    to the product, or a checkout of it in progress, is 409 `already_subscribed`.

    It manages its own transactions, and holds no row lock while Stripe is called:

    1. the checks, unlocked (a refused request makes nothing in Stripe);
    2. the Stripe customer and price, made if missing (the checkout's and catalog's helpers,
       their own idempotency keys);
    3. our `incomplete` row, committed after the checks are repeated under the customer's lock;
    4. Stripe's subscription, keyed `subscription:{row id}:create` — derived from our id only,
       so a retry (which reuses the row) gets the same subscription back and two prices or two
       customers can never collide;
    5. Stripe's answer applied to the row.
    """
    found = get_active_price(principal.organization_id, _parse_price_id(raw_price_id))
    price = _DirectPrice(
        id=found.id,
        product_id=found.product_id,
        is_free=found.is_free,
        trial_period_days=found.trial_period_days,
    )
    if not found.is_recurring:
        raise PaymentRequired(
            "A one-time price is paid through a checkout (POST /v1/checkout/create)."
        )
    if not price.is_free and not price.trial_period_days:
        raise PaymentRequired(
            "This price is charged when the subscription starts: subscribe through a checkout "
            "(POST /v1/checkout/create)."
        )
    _refuse_if_not_allowed(db.session(), principal.customer_id, price)
    db.session.remove()  # no connection held across the Stripe calls below

    try:
        stripe_customer_id = ensure_stripe_customer(principal.customer_id)
        stripe_price_id = ensure_stripe_price(price.id)
    except StripeGatewayError as error:
        raise stripe_failure(error) from None

    subscription_id = _claim_direct_row(principal, price)
    idempotency_key = f"subscription:{subscription_id}:create"
    gateway = get_gateway()
    try:
        stripe_subscription = gateway.create_direct_subscription(
            idempotency_key=idempotency_key,
            organization_id=principal.organization_id,
            customer_id=principal.customer_id,
            price_id=price.id,
            stripe_customer_id=stripe_customer_id,
            stripe_price_id=stripe_price_id,
            trial_period_days=None if price.is_free else price.trial_period_days,
            subscription_id=subscription_id,
        )
    except TransientStripeError as error:
        # Stripe may have made it: the row stays `incomplete` (it blocks nothing) and the
        # client's retry reuses it, so the same key returns that subscription.
        raise stripe_failure(error) from None
    except StripeGatewayError as error:
        # Stripe made nothing: end the row so no orphan lingers.
        _abandon_direct_row(subscription_id)
        raise stripe_failure(error) from None

    try:
        return _record_direct_subscription(subscription_id, stripe_subscription)
    except IntegrityError:
        # A checkout made the product live for this customer meanwhile (the one-live-per-
        # product index): undo ours in Stripe and record that.
        log.info("direct subscription %s lost to a checkout; canceling it", subscription_id)
        canceled = _cancel_orphan(gateway, stripe_subscription.id, idempotency_key)
        _record_direct_subscription(subscription_id, canceled)
        raise AlreadySubscribed(UPGRADE_DETAIL) from None


def _cancel_orphan(
    gateway: StripeGateway, stripe_subscription_id: str, key: str
) -> stripe.Subscription:
    try:
        return gateway.cancel_subscription(stripe_subscription_id, idempotency_key=f"{key}:undo")
    except StripeGatewayError as error:
        raise stripe_failure(error) from None


# --------------------------------------------------------------------------- canceling


# Stripe answers to one cancellation applied at most this many times: each retry means a webhook
# changed the row between our call and our write, and a fresh read of Stripe settles it.
CANCEL_APPLY_ROUNDS = 3


@dataclass(frozen=True)
class _CancelPlan:
    stripe_subscription_id: str
    # The row's version when the decision was made: Stripe's answer is written only over it.
    version: int
    idempotency_key: str


def cancel_subscription(
    principal: CustomerPrincipal, subscription_id: uuid.UUID, *, at_period_end: bool
) -> Subscription:
    """Cancel through Stripe, now or at the period's end; our row follows Stripe's answer.

    At period end, the subscription stays active (and entitling) until Stripe ends it with
    `customer.subscription.deleted`; now, it ends at once and so do its entitlements.
    https://docs.stripe.com/billing/subscriptions/cancel

    It manages its own transactions and holds no lock or pooled connection while Stripe is
    called: decide (a plain read), call Stripe, then write Stripe's answer under the row locks
    (checkout, then subscription) only if the row is still at the version the decision saw. A
    webhook that moved it meanwhile makes us read Stripe again instead of writing an answer
    that may be older than what the webhook applied.
    """
    plan = _plan_cancellation(principal, subscription_id, at_period_end=at_period_end)
    if isinstance(plan, Subscription):
        return plan
    gateway = get_gateway()
    try:
        if at_period_end:
            stripe_subscription = gateway.update_subscription(
                plan.stripe_subscription_id,
                {"cancel_at_period_end": True},
                idempotency_key=plan.idempotency_key,
            )
        else:
            stripe_subscription = gateway.cancel_subscription(
                plan.stripe_subscription_id, idempotency_key=plan.idempotency_key
            )
    except InvalidStripeRequest:
        # Stripe refuses to cancel what has already ended (a webhook we have not processed
        # yet, or the merchant's dashboard): its current state is the answer.
        stripe_subscription = _current_state(gateway, plan.stripe_subscription_id)
        if stripe_subscription["status"] not in ENDED_STATUSES:
            raise StripeRejected("Stripe refused the cancellation; nothing was changed.") from None
    except StripeGatewayError as error:
        raise stripe_failure(error) from None
    version = plan.version
    for _ in range(CANCEL_APPLY_ROUNDS):
        applied = _apply_if_unchanged(subscription_id, version, stripe_subscription)
        if isinstance(applied, Subscription):
            return applied
        version = applied
        stripe_subscription = _current_state(gateway, plan.stripe_subscription_id)
    # Still moving after several reads: the webhooks carry the rest; show the row as it is.
    return _load(subscription_id)


def _plan_cancellation(
    principal: CustomerPrincipal, subscription_id: uuid.UUID, *, at_period_end: bool
) -> _CancelPlan | Subscription:
    """What to ask Stripe, decided on a plain read; the row itself when there is nothing to ask."""
    session = db.session()
    try:
        subscription = get_customer_subscription(session, principal.customer_id, subscription_id)
        if subscription.status in ENDED_STATUSES or subscription.stripe_subscription_id is None:
            raise SubscriptionNotCancelable(f"The subscription is already {subscription.status}.")
        if at_period_end and subscription.cancel_at_period_end:
            return subscription
        if at_period_end:
            # The key names the state it changes, so a repeat after the customer resumed the
            # subscription (in the portal) is a new request, not a replay of the old answer.
            stamp = int(subscription.updated_at.timestamp() * 1_000_000)
            key = f"subscription:{subscription.id}:cancel-at-period-end:{stamp}"
        else:
            key = f"subscription:{subscription.id}:cancel"
        return _CancelPlan(subscription.stripe_subscription_id, subscription.version, key)
    finally:
        # No connection (nor the transaction the read opened) is kept across the Stripe call.
        db.session.remove()


def _apply_if_unchanged(
    subscription_id: uuid.UUID, version: int, stripe_subscription: stripe.Subscription
) -> Subscription | int:
    """Write Stripe's answer if the row is still at `version`; else the version it moved to."""
    with db.transaction() as session:
        _checkout, row = stripe_sync.lock_subscription_rows(
            session, stripe_sync.as_dict(stripe_subscription)
        )
        if row is None or row.id != subscription_id:
            raise SubscriptionNotFound("No such subscription.")
        if row.version != version:
            return row.version
        stripe_sync.apply_subscription(session, stripe_subscription)
        session.flush()
        session.refresh(row)  # everything loaded: the caller serializes it after the commit
        return row


def _load(subscription_id: uuid.UUID) -> Subscription:
    with db.transaction() as session:
        row = session.get(Subscription, subscription_id)
        assert row is not None  # subscriptions are never deleted
        return row


def _current_state(gateway: StripeGateway, stripe_subscription_id: str) -> stripe.Subscription:
    try:
        return gateway.retrieve_subscription(stripe_subscription_id)
    except StripeGatewayError as error:
        raise stripe_failure(error) from None
