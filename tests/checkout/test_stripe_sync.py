"""`app.stripe_sync`: Stripe's truth applied idempotently and never backwards.

The checkout is prepared in-process (the task body, no worker) and paid the way Stripe.js pays,
straight at the emulator; then the objects are applied as a webhook handler would apply them.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import stripe as stripe_lib
from sqlalchemy import select

from app.checkout.stripe_steps import prepare_checkout
from app.db import db
from app.stripe_sync import (
    apply_payment_intent,
    apply_subscription,
    transaction_with_stripe_reads,
)
from models import PaymentIntent, Subscription
from tests.checkout.conftest import Catalog, create, fetch
from tests.factories import Buyer


def _prepared(client: Any, buyer: Buyer, price_id: Any) -> uuid.UUID:
    checkout_id = uuid.UUID(create(client, buyer, price_id).get_json()["id"])
    prepare_checkout(checkout_id)
    assert fetch(checkout_id).status == "open"
    return checkout_id


def _apply(fn: Any, obj: Any, **kwargs: Any) -> None:
    # As the webhook worker applies: any Stripe read is made between two transactions.
    transaction_with_stripe_reads(lambda session: fn(session, obj, **kwargs), rounds=3)


class TestApplyPaymentIntent:
    def test_idempotent_and_never_backwards(
        self, client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any
    ) -> None:
        checkout_id = _prepared(client, buyer, catalog.one_time.id)
        stripe = stripe_emulator.client()
        intent_id = fetch(checkout_id).stripe_payment_intent_id
        paid = stripe.v1.payment_intents.confirm(
            intent_id, params={"payment_method": "pm_card_visa"}
        )

        _apply(apply_payment_intent, paid)
        done = fetch(checkout_id)
        assert (done.status, done.completed_at is not None) == ("succeeded", True)
        version = done.version

        # The same news again (a duplicate webhook) changes nothing.
        _apply(apply_payment_intent, paid)
        assert fetch(checkout_id).version == version

        # A late, older state as a webhook payload (a plain dict) neither.
        stale = paid.to_dict() | {"status": "processing"}
        _apply(apply_payment_intent, stale)
        assert (fetch(checkout_id).status, fetch(checkout_id).version) == ("succeeded", version)
        db.session.remove()
        payment = db.session.execute(
            select(PaymentIntent).where(PaymentIntent.stripe_payment_intent_id == intent_id)
        ).scalar_one()
        assert payment.status == "succeeded"

    def test_decline_news_fails_the_checkout_with_the_reason(
        self, client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any
    ) -> None:
        checkout_id = _prepared(client, buyer, catalog.one_time.id)
        stripe = stripe_emulator.client()
        intent_id = fetch(checkout_id).stripe_payment_intent_id
        with pytest.raises(stripe_lib.CardError):  # what Stripe.js would show the buyer
            stripe.v1.payment_intents.confirm(
                intent_id, params={"payment_method": "pm_card_visa_chargeDeclined"}
            )
        _apply(apply_payment_intent, stripe.v1.payment_intents.retrieve(intent_id))
        failed = fetch(checkout_id)
        assert failed.status == "failed"
        assert failed.last_error == {
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": failed.last_error["message"],
        }


class TestApplySubscription:
    def test_older_state_never_overwrites_newer(
        self, client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any
    ) -> None:
        checkout_id = _prepared(client, buyer, catalog.monthly.id)
        checkout = fetch(checkout_id)
        stripe = stripe_emulator.client()
        incomplete = stripe.v1.subscriptions.retrieve(checkout.stripe_subscription_id)
        stripe.v1.payment_intents.confirm(
            checkout.stripe_payment_intent_id, params={"payment_method": "pm_card_visa"}
        )
        active = stripe.v1.subscriptions.retrieve(checkout.stripe_subscription_id)
        assert (incomplete.status, active.status) == ("incomplete", "active")

        _apply(apply_subscription, active)
        assert fetch(checkout_id).status == "succeeded"
        db.session.remove()
        row = db.session.execute(
            select(Subscription).where(Subscription.checkout_session_id == checkout_id)
        ).scalar_one()
        assert row.status == "active" and row.stripe_state_at is not None
        state_at, row_id = row.stripe_state_at, row.id

        # An event created well before the state we hold: skipped... unless in doubt, when the
        # subscription is fetched again — either way it stays active.
        before = len(stripe_emulator.requests(path="/v1/subscriptions/", method="GET"))
        _apply(
            apply_subscription, incomplete.to_dict(), event_created=state_at - timedelta(hours=1)
        )
        db.session.remove()
        row = db.session.get(Subscription, row_id)
        assert row is not None and row.status == "active"
        assert len(stripe_emulator.requests(path="/v1/subscriptions/", method="GET")) == before + 1

        # A newer event is applied as it comes (here: Stripe says canceled).
        canceled = stripe.v1.subscriptions.cancel(checkout.stripe_subscription_id)
        _apply(
            apply_subscription, canceled.to_dict(), event_created=state_at + timedelta(seconds=1)
        )
        db.session.remove()
        row = db.session.get(Subscription, row_id)
        assert row is not None and row.status == "canceled"
        # The checkout keeps its success: it did succeed.
        assert fetch(checkout_id).status == "succeeded"
