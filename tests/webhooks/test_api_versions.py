"""An event rendered in another API version than ours is applied from the object re-fetched
at our version, and counted."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select

from app.db import db
from app.webhooks import service
from models import CheckoutSession, Subscription
from tests.support.stripe_webhooks import envelope
from tests.webhooks.conftest import Shop, prepared_checkout

OLD_VERSION = "2025-02-24.acacia"


def _mismatches() -> float:
    value = REGISTRY.get_sample_value(
        "billingos_stripe_event_api_version_mismatch_total", {"api_version": OLD_VERSION}
    )
    return value or 0.0


def test_an_invoice_event_from_before_basil_still_settles_the_subscription(
    client: Any, shop: Shop, post_event: Any, stripe_emulator: Any
) -> None:
    checkout = prepared_checkout(client, shop, shop.monthly)
    checkout_id = checkout.id
    stripe = stripe_emulator.client()
    stripe.v1.payment_intents.confirm(
        checkout.stripe_payment_intent_id, params={"payment_method": "pm_card_visa"}
    )
    subscription = stripe.v1.subscriptions.retrieve(checkout.stripe_subscription_id)
    # The invoice as an endpoint on an API version before 2025-03-31 receives it.
    invoice = json.loads(str(stripe.v1.invoices.retrieve(subscription.latest_invoice)))
    invoice.pop("parent")
    invoice["subscription"] = subscription.id
    event = envelope("invoice.paid", invoice) | {"api_version": OLD_VERSION}
    assert post_event(event).status_code == 200
    before = _mismatches()

    result = service.process_stored_event(event["id"])

    assert result.outcome == "processed" and result.note is None
    assert _mismatches() == before + 1
    db.session.remove()
    row = db.session.execute(
        select(Subscription).where(Subscription.stripe_subscription_id == subscription.id)
    ).scalar_one()
    assert row.status == "active"
    assert db.session.get(CheckoutSession, checkout_id).status == "succeeded"  # type: ignore[union-attr]
