"""Whole purchases against the Stripe emulator, settled by its webhooks (or, without them, by
the reconciler): the API, a real web server receiving Stripe's deliveries, real workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.db import db
from app.webhooks import reconciliation
from models import PaymentIntent, StripeEvent, Subscription
from models.stripe_event import PENDING, PROCESSED
from tasks.maintenance import reconcile_stuck_checkouts
from tests.support.emulator import EmulatorProcess
from tests.support.processes import wait_until
from tests.webhooks.conftest import WEBHOOK_PATH, Shop, count


@dataclass
class Pipeline:
    emulator: EmulatorProcess
    client: FlaskClient
    shop: Shop

    def open_checkout(self, price_id: Any) -> dict[str, Any]:
        response = self.client.post(
            "/v1/checkout/create",
            json={"price_id": str(price_id)},
            headers={**self.shop.buyer.headers, "Prefer": "wait=10"},
        )
        assert response.status_code == 201, response.get_json()
        checkout: dict[str, Any] = response.get_json()
        assert checkout["status"] == "open"
        return checkout

    def confirm(self, checkout: dict[str, Any], payment_method: str) -> None:
        response = self.client.post(
            f"/v1/checkout/{checkout['client_secret']}/confirm",
            json={"payment_method_id": payment_method},
            headers=self.shop.buyer.headers,
        )
        assert response.status_code == 202, response.get_json()

    def status(self, checkout: dict[str, Any]) -> dict[str, Any]:
        response = self.client.get(
            f"/v1/checkout/{checkout['id']}/status", headers=self.shop.buyer.headers
        )
        body: dict[str, Any] = response.get_json()
        return body

    def wait_for_status(self, checkout: dict[str, Any], status: str) -> dict[str, Any]:
        result: dict[str, Any] = wait_until(
            lambda: (current := self.status(checkout))["status"] == status and current,
            timeout=60,
            interval=0.1,
        )
        return result

    def inbox_settled(self) -> bool:
        """Every delivery Stripe attempted was acknowledged and every stored event is done."""
        events = self.emulator.events()
        delivered = all(
            delivery["status"] == "succeeded"
            for event in events
            for delivery in event["deliveries"]
        )
        db.session.expire_all()
        pending = db.session.execute(
            select(StripeEvent.id).where(StripeEvent.status == PENDING)
        ).first()
        return delivered and pending is None


@pytest.fixture()
def pipeline(
    stripe_emulator, start_web_server, start_worker, webhook_secret, client, shop
) -> Pipeline:
    server = start_web_server()
    stripe_emulator.register_webhook(server.url + WEBHOOK_PATH, webhook_secret)
    start_worker(concurrency=2)
    return Pipeline(stripe_emulator, client, shop)


def payment_intent_id(checkout: dict[str, Any]) -> str:
    client_secret: str = checkout["client_secret"]
    return client_secret.split("_secret_")[0]


def test_purchase_under_webhook_chaos_converges_on_stripes_state(pipeline: Pipeline):
    emulator = pipeline.emulator
    emulator.webhook_chaos(duplicate_rate=0.5, shuffle=True, delay_ms=150)
    checkout = pipeline.open_checkout(pipeline.shop.monthly.id)
    pi_id = payment_intent_id(checkout)
    # The buyer confirms in Stripe's iframe (Stripe.js), not through our API: only Stripe's
    # webhooks tell us what happened.
    stripe = emulator.client()
    stripe.v1.payment_intents.confirm(pi_id, params={"payment_method": "pm_card_visa"})

    settled = pipeline.wait_for_status(checkout, "succeeded")
    wait_until(pipeline.inbox_settled, timeout=90, interval=0.2)

    deliveries = [d for event in emulator.events() for d in event["deliveries"]]
    assert any(d["duplicate"] for d in deliveries), "the chaos produced no duplicate"
    db.session.expire_all()
    assert count(Subscription) == 1
    assert count(PaymentIntent) == 1
    subscription = db.session.execute(select(Subscription)).scalar_one()
    payment = db.session.execute(select(PaymentIntent)).scalar_one()
    in_stripe_subscription = stripe.v1.subscriptions.retrieve(subscription.stripe_subscription_id)
    in_stripe_payment = stripe.v1.payment_intents.retrieve(pi_id)
    assert subscription.status == in_stripe_subscription.status == "active"
    assert subscription.cancel_at_period_end is in_stripe_subscription.cancel_at_period_end
    assert payment.stripe_payment_intent_id == pi_id
    assert (payment.status, payment.amount, payment.currency) == (
        in_stripe_payment.status,
        in_stripe_payment.amount,
        in_stripe_payment.currency,
    )
    assert settled["subscription"]["status"] == "active"
    # Every handled event was recognised as ours and processed in one attempt.
    handled = db.session.execute(
        select(
            StripeEvent.type, StripeEvent.status, StripeEvent.attempts, StripeEvent.last_error
        ).where(StripeEvent.status != "ignored")
    ).all()
    assert {row.type for row in handled} >= {
        "customer.subscription.created",
        "customer.subscription.updated",
        "payment_intent.succeeded",
        "invoice.paid",
    }
    assert {(row.status, row.attempts, row.last_error) for row in handled} == {(PROCESSED, 1, None)}


def test_three_d_secure_authentication_reaches_succeeded_through_the_webhook(
    pipeline: Pipeline,
):
    checkout = pipeline.open_checkout(pipeline.shop.one_time.id)
    pipeline.confirm(checkout, "pm_card_threeDSecure2Required")
    waiting = pipeline.wait_for_status(checkout, "requires_action")
    assert waiting["next_action"]["type"] == "use_stripe_sdk"

    pi_id = payment_intent_id(checkout)
    pipeline.emulator.authenticate("payment_intent", pi_id, "succeed")

    pipeline.wait_for_status(checkout, "succeeded")
    db.session.expire_all()
    event = db.session.execute(
        select(StripeEvent).where(
            StripeEvent.type == "payment_intent.succeeded", StripeEvent.object_id == pi_id
        )
    ).scalar_one()
    assert event.status == PROCESSED
    assert event.last_error is None
    assert count(PaymentIntent, PaymentIntent.status == "succeeded") == 1


def test_without_webhooks_the_reconciler_settles_a_paid_checkout(pipeline: Pipeline):
    checkout = pipeline.open_checkout(pipeline.shop.one_time.id)
    pipeline.confirm(checkout, "pm_card_threeDSecure2Required")
    pipeline.wait_for_status(checkout, "requires_action")

    pipeline.emulator.pause_webhooks()
    pi_id = payment_intent_id(checkout)
    pipeline.emulator.authenticate("payment_intent", pi_id, "succeed")
    # Paid in Stripe; no webhook comes, so nothing here knows yet.
    assert pipeline.status(checkout)["status"] == "requires_action"

    db.session.expire_all()
    stuck = reconciliation.stuck_checkout_ids(db.session(), older_than_seconds=0)
    assert [str(checkout_id) for checkout_id in stuck] == [checkout["id"]]
    assert reconcile_stuck_checkouts.apply(kwargs={"older_than_seconds": 0}).get() == 1

    pipeline.wait_for_status(checkout, "succeeded")
    assert count(PaymentIntent, PaymentIntent.status == "succeeded") == 1
    db.session.expire_all()
    assert (
        db.session.execute(
            select(StripeEvent.id).where(StripeEvent.type == "payment_intent.succeeded")
        ).first()
        is None
    )
