"""A customer who already had a trial of a product gets none again through a checkout."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from app.checkout.stripe_steps import prepare_checkout
from app.db import db
from models import Subscription
from models.base import utcnow
from tests.checkout.conftest import Catalog, create, fetch
from tests.factories import Buyer


def _prepared(client: Any, buyer: Buyer, price_id: Any) -> uuid.UUID:
    checkout_id = uuid.UUID(create(client, buyer, price_id).get_json()["id"])
    prepare_checkout(checkout_id)
    assert fetch(checkout_id).status == "open"
    return checkout_id


def test_first_checkout_of_a_trial_price_starts_the_trial(
    client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any
) -> None:
    checkout = fetch(_prepared(client, buyer, catalog.trial.id))
    assert checkout.intent_type == "setup"
    subscription = stripe_emulator.client().v1.subscriptions.retrieve(
        checkout.stripe_subscription_id
    )
    assert subscription.status == "trialing"


def test_a_second_trial_is_not_given_the_first_period_is_billed(
    client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any
) -> None:
    ended = utcnow() - timedelta(days=30)
    db.session.add(
        Subscription(
            organization_id=buyer.organization_id,
            customer_id=buyer.customer_id,
            product_id=catalog.trial.product_id,
            price_id=catalog.trial.id,
            stripe_subscription_id=f"sub_earlier_{uuid.uuid4().hex[:8]}",
            status="canceled",
            trial_end=ended,
            ended_at=ended,
        )
    )
    db.session.commit()

    checkout = fetch(_prepared(client, buyer, catalog.trial.id))

    assert checkout.intent_type == "payment" and checkout.stripe_payment_intent_id
    subscription = stripe_emulator.client().v1.subscriptions.retrieve(
        checkout.stripe_subscription_id
    )
    assert subscription.status == "incomplete" and subscription.trial_end is None
