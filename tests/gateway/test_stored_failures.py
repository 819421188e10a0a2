"""A 500 that Stripe stored under an idempotency key does not lock a customer or price out.

Stripe replays a stored 500 to every retry with the same key for 24 hours; the per-resource
keys (`customer:{id}:create`, `price:{id}:mirror`) move to a new generation after one.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.catalog.mirror import ensure_stripe_price
from app.checkout.stripe_steps import ensure_stripe_customer, prepare_checkout
from app.db import db
from app.stripe_gateway import TransientStripeError
from models import CheckoutSession, Customer
from tests.factories import Buyer
from tests.support.billing import Catalog


@pytest.mark.emulator_only("a stored 500 cannot be provoked in Stripe test mode")
def test_a_stored_500_on_customer_create_is_not_replayed_forever(
    app_context: None, buyer: Buyer, stripe_emulator: Any
) -> None:
    stripe_emulator.set_faults("stored_500", rate=1.0, count=1, paths=["/v1/customers"])
    with pytest.raises(TransientStripeError) as failed:
        ensure_stripe_customer(buyer.customer_id)
    assert failed.value.stored
    # The retry (a task's next attempt) gets a customer instead of the stored 500.
    stripe_customer_id = ensure_stripe_customer(buyer.customer_id)
    assert stripe_customer_id.startswith("cus_")
    db.session.remove()
    stored = db.session.execute(
        select(Customer.stripe_customer_id).where(Customer.id == buyer.customer_id)
    ).scalar_one()
    assert stored == stripe_customer_id
    keys = [r["idempotency_key"] for r in stripe_emulator.requests(path="/v1/customers")]
    assert keys[0] != keys[-1] and len(set(keys)) == 2


@pytest.mark.emulator_only("a stored 500 cannot be provoked in Stripe test mode")
def test_a_stored_500_on_price_mirror_is_not_replayed_forever(
    app_context: None, catalog: Catalog, stripe_emulator: Any
) -> None:
    stripe_emulator.set_faults("stored_500", rate=1.0, count=1, paths=["/v1/prices"])
    with pytest.raises(TransientStripeError):
        ensure_stripe_price(catalog.monthly.id)
    assert ensure_stripe_price(catalog.monthly.id).startswith("price_")


@pytest.mark.emulator_only("needs the emulator's fault injection")
def test_a_timeout_keeps_the_key(app_context: None, buyer: Buyer, stripe_emulator: Any) -> None:
    # The request may have succeeded: only the same key can return its customer.
    stripe_emulator.set_faults(
        "timeout", rate=1.0, count=1, paths=["/v1/customers"], timeout_seconds=0.2
    )
    first = ensure_stripe_customer(buyer.customer_id)
    keys = {r["idempotency_key"] for r in stripe_emulator.requests(path="/v1/customers")}
    assert keys == {f"customer:{buyer.customer_id}:create"}
    assert first.startswith("cus_")


@pytest.mark.emulator_only("a stored 500 cannot be provoked in Stripe test mode")
def test_a_stored_500_on_prepare_does_not_fail_the_checkout(
    client: Any, buyer: Buyer, catalog: Catalog, stripe_emulator: Any
) -> None:
    created = client.post(
        "/v1/checkout/create", json={"price_id": str(catalog.one_time.id)}, headers=buyer.headers
    )
    checkout_id = uuid.UUID(created.get_json()["id"])
    stripe_emulator.set_faults("stored_500", rate=1.0, count=1, paths=["/v1/payment_intents"])
    with pytest.raises(TransientStripeError):
        prepare_checkout(checkout_id)
    prepare_checkout(checkout_id)  # the task's retry
    db.session.remove()
    checkout = db.session.get(CheckoutSession, checkout_id)
    assert checkout is not None and checkout.status == "open"
