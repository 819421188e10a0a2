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

import uuid

import stripe
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import stripe_sync
from app.auth import CustomerPrincipal
from app.catalog.service import PriceNotFound, get_active_price
from app.entitlements.service import recompute_entitlements
from app.errors import ApiError, Conflict, NotFound, ServiceUnavailable
from app.stripe_gateway import (
    InvalidStripeRequest,
    StripeGateway,
    StripeGatewayError,
    TransientStripeError,
    get_gateway,
)
from models import Customer, Product, ProductPrice, Subscription
from models.subscription import LIVE_STATUSES

# Statuses Stripe never leaves: nothing left to cancel.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"
    title = "Subscription not found"


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    title = "Already subscribed"


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


def list_customer_subscriptions(session: Session, customer_id: uuid.UUID) -> list[Subscription]:
    return list(
        session.execute(
            select(Subscription)
            .where(Subscription.customer_id == customer_id)
            .order_by(Subscription.created_at.desc(), Subscription.id.desc())
        ).scalars()
    )


def get_customer_subscription(
    session: Session, customer_id: uuid.UUID, subscription_id: uuid.UUID, *, lock: bool = False
) -> Subscription:
    """The customer's subscription; another customer's is as absent as a missing one."""
    stmt = select(Subscription).where(
        Subscription.id == subscription_id, Subscription.customer_id == customer_id
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
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


def _had_trial(session: Session, customer_id: uuid.UUID, product_id: uuid.UUID) -> bool:
    return (
        session.execute(
            select(func.count())
            .select_from(Subscription)
            .where(
                Subscription.customer_id == customer_id,
                Subscription.product_id == product_id,
                Subscription.trial_end.is_not(None),
            )
        ).scalar_one()
        > 0
    )


def _ensure_stripe_customer(gateway: StripeGateway, customer: Customer) -> str:
    if customer.stripe_customer_id is None:
        customer.stripe_customer_id = gateway.ensure_customer(
            customer_id=customer.id,
            organization_id=customer.organization_id,
            external_id=customer.external_id,
            email=customer.email,
            name=customer.name,
        )
    return customer.stripe_customer_id


def _ensure_stripe_price(session: Session, gateway: StripeGateway, price: ProductPrice) -> str:
    """The price's Stripe id, mirroring the product and price now if the catalog task has not.

    The idempotency keys are the catalog mirror's own (`product:{id}:mirror`,
    `price:{id}:mirror`), so the background mirror and this one make the same Stripe objects.
    """
    if price.stripe_price_id is not None:
        return price.stripe_price_id
    price = session.execute(
        select(ProductPrice)
        .where(ProductPrice.id == price.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if price.stripe_price_id is not None:
        return price.stripe_price_id
    product = session.execute(
        select(Product).where(Product.id == price.product_id).with_for_update()
    ).scalar_one()
    if product.stripe_product_id is None:
        product.stripe_product_id = gateway.create_product(
            product_id=product.id,
            organization_id=product.organization_id,
            name=product.name,
            description=product.description,
        ).id
    price.stripe_price_id = gateway.create_price(
        price_id=price.id,
        organization_id=price.organization_id,
        stripe_product_id=product.stripe_product_id,
        amount=price.amount,
        currency=price.currency,
        interval=price.interval,
    ).id
    return price.stripe_price_id


def create_direct_subscription(
    session: Session, principal: CustomerPrincipal, raw_price_id: str
) -> Subscription:
    """Subscribe the customer to a free price, or start a card-less trial, with no checkout.

    Anything that owes money today (a paid price without a trial, a one-time price, a second
    trial of the same product) needs a checkout: 402 `payment_required`.
    """
    price = get_active_price(principal.organization_id, _parse_price_id(raw_price_id))
    if not price.is_recurring:
        raise PaymentRequired(
            "A one-time price is paid through a checkout (POST /v1/checkout/create)."
        )
    if not price.is_free and not price.trial_period_days:
        raise PaymentRequired(
            "This price is charged when the subscription starts: subscribe through a checkout "
            "(POST /v1/checkout/create)."
        )
    # One direct subscription attempt at a time per customer: the existence check, the Stripe
    # call and the insert must not interleave with a concurrent one.
    customer = session.execute(
        select(Customer).where(Customer.id == principal.customer_id).with_for_update()
    ).scalar_one()
    if live_subscription(session, customer.id, price.product_id) is not None:
        raise AlreadySubscribed(UPGRADE_DETAIL)
    if not price.is_free and _had_trial(session, customer.id, price.product_id):
        raise PaymentRequired(
            "The trial of this product was already used: subscribe through a checkout "
            "(POST /v1/checkout/create)."
        )
    # The n-th subscription of this customer to this product: a retried request (or one whose
    # answer was lost) sends the same key and gets Stripe's first subscription back.
    attempt = (
        session.execute(
            select(func.count())
            .select_from(Subscription)
            .where(
                Subscription.customer_id == customer.id,
                Subscription.product_id == price.product_id,
            )
        ).scalar_one()
        + 1
    )
    idempotency_key = f"customer:{customer.id}:product:{price.product_id}:subscribe:{attempt}"
    gateway = get_gateway()
    try:
        stripe_subscription = gateway.create_direct_subscription(
            idempotency_key=idempotency_key,
            organization_id=customer.organization_id,
            customer_id=customer.id,
            price_id=price.id,
            stripe_customer_id=_ensure_stripe_customer(gateway, customer),
            stripe_price_id=_ensure_stripe_price(session, gateway, price),
            trial_period_days=None if price.is_free else price.trial_period_days,
        )
    except StripeGatewayError as error:
        raise stripe_failure(error) from None

    try:
        with session.begin_nested():
            session.add(
                Subscription(
                    organization_id=customer.organization_id,
                    customer_id=customer.id,
                    product_id=price.product_id,
                    price_id=price.id,
                    stripe_subscription_id=stripe_subscription.id,
                    status=stripe_subscription.status,
                )
            )
    except IntegrityError:
        # A checkout made the product live for this customer meanwhile: undo ours in Stripe.
        _cancel_orphan(gateway, stripe_subscription.id, idempotency_key)
        raise AlreadySubscribed(UPGRADE_DETAIL) from None
    subscription = stripe_sync.apply_subscription(session, stripe_subscription)
    assert subscription is not None  # the row was just inserted
    recompute_entitlements(session, customer.id)
    return subscription


def _cancel_orphan(gateway: StripeGateway, stripe_subscription_id: str, key: str) -> None:
    try:
        gateway.cancel_subscription(stripe_subscription_id, idempotency_key=f"{key}:undo")
    except StripeGatewayError as error:
        raise stripe_failure(error) from None


# --------------------------------------------------------------------------- canceling


def cancel_subscription(
    session: Session,
    principal: CustomerPrincipal,
    subscription_id: uuid.UUID,
    *,
    at_period_end: bool,
) -> Subscription:
    """Cancel through Stripe, now or at the period's end; our row follows Stripe's answer.

    At period end, the subscription stays active (and entitling) until Stripe ends it with
    `customer.subscription.deleted`; now, it ends at once and so do its entitlements.
    https://docs.stripe.com/billing/subscriptions/cancel
    """
    subscription = get_customer_subscription(
        session, principal.customer_id, subscription_id, lock=True
    )
    if subscription.status in ENDED_STATUSES or subscription.stripe_subscription_id is None:
        raise SubscriptionNotCancelable(f"The subscription is already {subscription.status}.")
    if at_period_end and subscription.cancel_at_period_end:
        return subscription
    gateway = get_gateway()
    try:
        if at_period_end:
            # The key names the state it changes, so a repeat after the customer resumed the
            # subscription (in the portal) is a new request, not a replay of the old answer.
            version = int(subscription.updated_at.timestamp() * 1_000_000)
            stripe_subscription = gateway.update_subscription(
                subscription.stripe_subscription_id,
                {"cancel_at_period_end": True},
                idempotency_key=f"subscription:{subscription.id}:cancel-at-period-end:{version}",
            )
        else:
            stripe_subscription = gateway.cancel_subscription(
                subscription.stripe_subscription_id,
                idempotency_key=f"subscription:{subscription.id}:cancel",
            )
    except InvalidStripeRequest:
        # Stripe refuses to cancel what has already ended (a webhook we have not processed
        # yet, or the merchant's dashboard): its current state is the answer.
        stripe_subscription = _current_state(gateway, subscription.stripe_subscription_id)
        if stripe_subscription["status"] not in ENDED_STATUSES:
            raise StripeRejected("Stripe refused the cancellation; nothing was changed.") from None
    except StripeGatewayError as error:
        raise stripe_failure(error) from None
    applied = stripe_sync.apply_subscription(session, stripe_subscription)
    return applied if applied is not None else subscription


def _current_state(gateway: StripeGateway, stripe_subscription_id: str) -> stripe.Subscription:
    try:
        return gateway.retrieve_subscription(stripe_subscription_id)
    except StripeGatewayError as error:
        raise stripe_failure(error) from None
