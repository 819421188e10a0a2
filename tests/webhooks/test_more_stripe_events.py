"""Events beyond the happy path, through the emulator's real deliveries: a dispute (lost: the
purchase is revoked; visible to the merchant), a refund that fails, a PaymentIntent canceled in
Stripe, a trial card that fails to save."""

# ruff: noqa: F811 - `pipeline` is the fixture imported from test_stripe_flows

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from app.db import db
from app.webhooks import service
from models import Entitlement, PaymentIntent
from tests.factories import make_product
from tests.support.processes import wait_until
from tests.webhooks.conftest import Shop, prepared_checkout
from tests.webhooks.test_stripe_flows import Pipeline, payment_intent_id, pipeline  # noqa: F401


def _payment(stripe_id: str) -> PaymentIntent | None:
    db.session.expire_all()
    return db.session.execute(
        select(PaymentIntent).where(PaymentIntent.stripe_payment_intent_id == stripe_id)
    ).scalar_one_or_none()


def _entitled_customer(customer_id: Any) -> bool:
    db.session.expire_all()
    row = db.session.execute(
        select(Entitlement.id).where(Entitlement.customer_id == customer_id)
    ).first()
    return row is not None


def _entitled(pipeline: Pipeline) -> bool:
    return _entitled_customer(pipeline.shop.buyer.customer_id)


def _buy(pipeline: Pipeline, card: str) -> str:
    checkout = pipeline.open_checkout(pipeline.shop.one_time.id)
    pipeline.confirm(checkout, card)
    pipeline.wait_for_status(checkout, "succeeded")
    return payment_intent_id(checkout)


def test_a_lost_dispute_revokes_the_purchase_and_is_shown_to_the_merchant(
    pipeline: Pipeline,
) -> None:
    stripe_id = _buy(pipeline, "pm_card_createDispute")
    wait_until(lambda: (p := _payment(stripe_id)) and p.dispute_status == "needs_response")
    assert _entitled(pipeline)
    payments = pipeline.client.get("/v1/payments", headers=pipeline.shop.merchant.headers)
    assert [p["dispute_status"] for p in payments.get_json()["data"]] == ["needs_response"]

    created = pipeline.emulator.events(type="charge.dispute.created")[0]
    pipeline.emulator.close_dispute(created["object_id"], "lost")
    wait_until(lambda: (p := _payment(stripe_id)) and p.dispute_status == "lost")
    wait_until(lambda: not _entitled(pipeline))


def test_a_failed_refund_restores_what_it_took_away(
    client: Any, shop: Shop, post_event: Any, stripe_emulator: Any
) -> None:
    # No endpoint: the test delivers Stripe's own events itself, in their natural order.
    checkout = prepared_checkout(client, shop, shop.one_time)
    stripe = stripe_emulator.client()
    stripe_id = checkout.stripe_payment_intent_id
    paid = stripe.v1.payment_intents.confirm(
        stripe_id, params={"payment_method": "pm_card_refundFail"}
    )
    stripe.v1.refunds.create(params={"payment_intent": paid.id})
    for event_type in ("payment_intent.succeeded", "charge.refunded", "charge.refund.updated"):
        event = stripe.v1.events.retrieve(stripe_emulator.events(type=event_type)[0]["id"])
        assert post_event(json.loads(str(event))).status_code == 200
        assert service.process_stored_event(event.id).outcome == "processed"
        if event_type == "charge.refunded":
            payment = _payment(stripe_id)
            assert payment is not None and payment.amount_refunded == payment.amount
            assert not _entitled_customer(shop.buyer.customer_id)
    payment = _payment(stripe_id)
    assert payment is not None and payment.amount_refunded == 0
    assert _entitled_customer(shop.buyer.customer_id)


def test_a_payment_intent_canceled_in_stripe_cancels_the_checkout(pipeline: Pipeline) -> None:
    checkout = pipeline.open_checkout(pipeline.shop.one_time.id)
    pipeline.emulator.client().v1.payment_intents.cancel(
        payment_intent_id(checkout), params={"cancellation_reason": "requested_by_customer"}
    )
    pipeline.wait_for_status(checkout, "canceled")


def test_a_trial_card_that_fails_to_save_fails_the_checkout(pipeline: Pipeline) -> None:
    trial = make_product(
        pipeline.shop.merchant,
        name="Team",
        prices=[{"amount": 4900, "currency": "usd", "interval": "month", "trial_period_days": 14}],
        features=[{"key": "team", "name": "Team"}],
    )
    checkout = pipeline.open_checkout(trial.prices[0].id)
    setup_intent_id = checkout["client_secret"].split("_secret_")[0]
    stripe: Any = pipeline.emulator.client()
    try:  # the buyer's card, declined in Stripe's iframe: only the webhook tells us
        stripe.v1.setup_intents.confirm(
            setup_intent_id, params={"payment_method": "pm_card_visa_chargeDeclined"}
        )
    except Exception as declined:
        assert "declined" in str(declined)
    failed = pipeline.wait_for_status(checkout, "failed")
    assert failed["last_error"]["code"] == "card_declined"
