"""Entitlements through Stripe's lifecycle: purchases, renewals, refunds, failed renewals.

Each scenario drives the emulator (payments, refunds, its clock), relays the events Stripe
emits to our webhook endpoint and processes them, and reads the SDK's cached entitlement
endpoint before and after every change: the cache must never lag a committed change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.catalog.mirror import ensure_stripe_price
from app.db import db
from app.stripe_gateway import get_gateway
from models import Customer, PaymentIntent
from models.base import utcnow
from tests.support.billing import entitlement_keys, open_checkout_row, subscribe_with_card

DAY = 86400


def _entitlements(client, buyer) -> list[dict]:
    return client.get("/v1/customer/entitlements", headers=buyer.headers).get_json()["data"]


def _buy_once(relay, buyer, price, card="pm_card_visa") -> str:
    """A one-time checkout, paid with `card`; returns the Stripe PaymentIntent id."""
    customer = db.session.get(Customer, buyer.customer_id)
    gateway = get_gateway()
    stripe_customer_id = gateway.ensure_customer(
        customer_id=customer.id,
        organization_id=customer.organization_id,
        external_id=customer.external_id,
        email=customer.email,
        name=customer.name,
        stripe_customer_id=customer.stripe_customer_id,
    )
    customer.stripe_customer_id = stripe_customer_id
    ensure_stripe_price(price.id)
    checkout = open_checkout_row(buyer, price)
    payment_intent = gateway.create_payment_intent(
        checkout_id=checkout.id,
        organization_id=buyer.organization_id,
        stripe_customer_id=stripe_customer_id,
        amount=price.amount,
        currency=price.currency,
    )
    checkout.stripe_payment_intent_id = payment_intent.id
    db.session.commit()
    relay.stripe.v1.payment_intents.confirm(payment_intent.id, params={"payment_method": card})
    relay.deliver()
    return payment_intent.id


class TestPurchases:
    def test_monthly_subscription_grants_until_its_period_ends(self, client, buyer, catalog, relay):
        assert entitlement_keys(client, buyer) == []  # warm the cache with "nothing"
        subscription = subscribe_with_card(relay, buyer, catalog.monthly)
        assert subscription.status == "active"
        entitlements = _entitlements(client, buyer)
        assert [(e["feature_key"], e["source"]) for e in entitlements] == [
            ("export", "subscription"),
            ("pro", "subscription"),
        ]
        period_end = datetime.fromisoformat(entitlements[0]["expires_at"])
        assert period_end == subscription.current_period_end.astimezone(UTC)
        assert timedelta(days=27) < period_end - utcnow() < timedelta(days=32)

    def test_yearly_subscription_grants_for_a_year(self, client, buyer, catalog, relay):
        subscribe_with_card(relay, buyer, catalog.yearly)
        entitlements = _entitlements(client, buyer)
        assert {e["feature_key"] for e in entitlements} == {"pro", "export"}
        period_end = datetime.fromisoformat(entitlements[0]["expires_at"])
        assert timedelta(days=360) < period_end - utcnow() < timedelta(days=367)

    def test_one_time_purchase_grants_forever(self, client, buyer, catalog, relay):
        assert entitlement_keys(client, buyer) == []
        _buy_once(relay, buyer, catalog.one_time)
        assert _entitlements(client, buyer) == [
            {
                "feature_key": "export",
                "product_id": str(catalog.lifetime.id),
                "source": "purchase",
                "expires_at": None,
            }
        ]

    def test_declined_purchase_grants_nothing(self, client, buyer, catalog, relay):
        try:
            _buy_once(relay, buyer, catalog.one_time, card="pm_card_visa_chargeDeclined")
        except Exception as error:  # the confirm call itself answers 402
            assert "declined" in str(error).lower()
        relay.deliver()
        assert entitlement_keys(client, buyer) == []

    def test_renewal_moves_the_expiry(self, client, buyer, catalog, relay, stripe_emulator):
        subscribe_with_card(relay, buyer, catalog.monthly)
        first_end = _entitlements(client, buyer)[0]["expires_at"]
        stripe_emulator.advance_clock(32 * DAY)
        relay.deliver()
        renewed = _entitlements(client, buyer)
        assert {e["feature_key"] for e in renewed} == {"pro", "export"}
        assert datetime.fromisoformat(renewed[0]["expires_at"]) > datetime.fromisoformat(first_end)


class TestRevocation:
    def test_full_refund_revokes_a_purchase(self, client, buyer, catalog, relay):
        payment_intent_id = _buy_once(relay, buyer, catalog.one_time)
        assert entitlement_keys(client, buyer) == [("export", "purchase")]
        relay.stripe.v1.refunds.create(params={"payment_intent": payment_intent_id})
        assert "charge.refunded" in relay.deliver()
        assert entitlement_keys(client, buyer) == []
        db.session.remove()
        payment = db.session.execute(
            select(PaymentIntent).where(PaymentIntent.stripe_payment_intent_id == payment_intent_id)
        ).scalar_one()
        assert payment.amount_refunded == payment.amount

    def test_partial_refund_keeps_a_purchase(self, client, buyer, catalog, relay):
        payment_intent_id = _buy_once(relay, buyer, catalog.one_time)
        relay.stripe.v1.refunds.create(params={"payment_intent": payment_intent_id, "amount": 500})
        relay.deliver()
        assert entitlement_keys(client, buyer) == [("export", "purchase")]

    def test_failed_renewal_keeps_access_while_past_due_and_revokes_when_unpaid(
        self, client, buyer, catalog, relay, stripe_emulator
    ):
        subscription = subscribe_with_card(relay, buyer, catalog.monthly)
        stripe_emulator.set_payment_method(
            subscription.stripe_subscription_id, "pm_card_visa_chargeDeclined"
        )
        relay.deliver()
        assert len(entitlement_keys(client, buyer)) == 2

        stripe_emulator.advance_clock(32 * DAY)  # the renewal is declined
        delivered = relay.deliver()
        assert "invoice.payment_failed" in delivered
        assert _status(client, buyer) == "past_due"
        # Stripe retries the payment; until then the customer keeps the features.
        assert len(entitlement_keys(client, buyer)) == 2

        stripe_emulator.advance_clock(4 * DAY)  # the retry is declined too
        relay.deliver()
        assert _status(client, buyer) == "unpaid"
        assert entitlement_keys(client, buyer) == []

    def test_cancel_now_revokes_a_paid_subscription(self, client, buyer, catalog, relay):
        subscription = subscribe_with_card(relay, buyer, catalog.monthly)
        assert len(entitlement_keys(client, buyer)) == 2
        response = client.post(
            f"/v1/customer/subscriptions/{subscription.id}/cancel",
            json={"at_period_end": False},
            headers=buyer.headers,
        )
        assert response.get_json()["status"] == "canceled"
        assert entitlement_keys(client, buyer) == []
        relay.deliver()
        assert entitlement_keys(client, buyer) == []

    def test_one_source_revoked_leaves_the_other(self, client, buyer, catalog, relay):
        # `export` is granted by both the Pro subscription and the lifetime purchase.
        subscription = subscribe_with_card(relay, buyer, catalog.monthly)
        _buy_once(relay, buyer, catalog.one_time)
        client.post(
            f"/v1/customer/subscriptions/{subscription.id}/cancel",
            json={"at_period_end": False},
            headers=buyer.headers,
        )
        assert entitlement_keys(client, buyer) == [("export", "purchase")]


def _status(client, buyer) -> str:
    [subscription] = client.get("/v1/customer/subscriptions", headers=buyer.headers).get_json()[
        "data"
    ]
    return subscription["status"]
