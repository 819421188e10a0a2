"""Scenario fixtures for subscriptions and entitlements: a catalog, Stripe, and paid subscriptions.

`subscribe_with_card` does what a recurring checkout does (Stripe customer, price mirror, a
`default_incomplete` subscription through the gateway, the card confirmed as Stripe.js would),
so entitlement tests can run the real webhook path before and regardless of the checkout API.
Import the fixtures into a conftest: `from tests.support.billing import *  # noqa: F403`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.catalog.demo import DEMO_PRODUCTS
from app.catalog.mirror import ensure_stripe_price
from app.db import db
from app.stripe_gateway import get_gateway, payment_intent_id_from_client_secret
from models import CheckoutSession, Customer, Product, ProductPrice, Subscription
from models.base import utcnow
from tests.factories import Buyer, Merchant, make_product
from tests.support.stripe_relay import StripeEventRelay

__all__ = ["Catalog", "catalog", "entitlement_keys", "relay", "subscribe_with_card"]


@dataclass
class Catalog:
    pro: Product  # monthly + yearly, features pro and export
    team: Product  # monthly with a 14-day trial, feature team
    free: Product  # $0 monthly, feature basic
    lifetime: Product  # one-time, feature export

    @property
    def monthly(self) -> ProductPrice:
        return self.pro.prices[0]

    @property
    def yearly(self) -> ProductPrice:
        return self.pro.prices[1]

    @property
    def trial(self) -> ProductPrice:
        return self.team.prices[0]

    @property
    def free_monthly(self) -> ProductPrice:
        return self.free.prices[0]

    @property
    def one_time(self) -> ProductPrice:
        return self.lifetime.prices[0]


@pytest.fixture()
def catalog(merchant: Merchant) -> Catalog:
    """The demo catalog (what `flask billingos seed-demo` sells), in `merchant`'s organization."""
    pro, team, lifetime, free = (
        make_product(merchant, name=p["name"], features=p["features"], prices=p["prices"])
        for p in DEMO_PRODUCTS
    )
    return Catalog(pro=pro, team=team, free=free, lifetime=lifetime)


@pytest.fixture()
def relay(stripe_emulator: Any, client: Any) -> StripeEventRelay:
    return StripeEventRelay(stripe_emulator, client)


def entitlement_keys(client: Any, buyer: Buyer) -> list[tuple[str, str]]:
    """(feature_key, source) pairs the SDK's entitlement endpoint returns right now."""
    response = client.get("/v1/customer/entitlements", headers=buyer.headers)
    assert response.status_code == 200, response.get_json()
    return [(e["feature_key"], e["source"]) for e in response.get_json()["data"]]


def _stripe_customer_id(buyer: Buyer) -> str:
    customer = db.session.get(Customer, buyer.customer_id)
    assert customer is not None
    if customer.stripe_customer_id is None:
        customer.stripe_customer_id = get_gateway().ensure_customer(
            customer_id=customer.id,
            organization_id=customer.organization_id,
            external_id=customer.external_id,
            email=customer.email,
            name=customer.name,
        )
        db.session.commit()
    return customer.stripe_customer_id


def open_checkout_row(buyer: Buyer, price: ProductPrice) -> CheckoutSession:
    """A committed `open` checkout, as `checkout.prepare` leaves it before the intent exists."""
    checkout = CheckoutSession(
        organization_id=buyer.organization_id,
        customer_id=buyer.customer_id,
        product_id=price.product_id,
        price_id=price.id,
        idempotency_key=f"test:{uuid.uuid4().hex}",
        status="open",
        amount=price.amount,
        currency=price.currency,
        intent_type="payment",
        expires_at=utcnow() + timedelta(hours=1),
    )
    db.session.add(checkout)
    db.session.commit()
    return checkout


def subscribe_with_card(
    relay: StripeEventRelay, buyer: Buyer, price: ProductPrice, card: str = "pm_card_visa"
) -> Subscription:
    """A recurring checkout, paid: returns our subscription row after the webhooks ran."""
    stripe_customer_id = _stripe_customer_id(buyer)
    stripe_price_id = ensure_stripe_price(price.id)
    checkout = open_checkout_row(buyer, price)
    stripe_subscription = get_gateway().create_subscription(
        checkout_id=checkout.id,
        organization_id=buyer.organization_id,
        stripe_customer_id=stripe_customer_id,
        stripe_price_id=stripe_price_id,
    )
    client_secret = stripe_subscription.latest_invoice.confirmation_secret.client_secret
    # What checkout.prepare records: the subscription and its first invoice's PaymentIntent.
    checkout.stripe_subscription_id = stripe_subscription.id
    checkout.stripe_payment_intent_id = payment_intent_id_from_client_secret(client_secret)
    db.session.commit()
    # The buyer confirms in Stripe.js; the webhooks tell us.
    relay.stripe.v1.payment_intents.confirm(
        payment_intent_id_from_client_secret(client_secret), params={"payment_method": card}
    )
    relay.deliver()
    db.session.remove()
    subscription = db.session.execute(
        select(Subscription).where(Subscription.stripe_subscription_id == stripe_subscription.id)
    ).scalar_one()
    return subscription
