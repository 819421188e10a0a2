"""A payment that succeeds after its checkout ended (expired or canceled) is refunded and
recorded: the buyer is never charged for nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.db import db
from app.stripe_sync import EXPIRY_CANCELLATION_COMMENT, apply_payment_intent, apply_subscription
from models import PaymentIntent
from tests.checkout.conftest import Catalog, fetch, open_checkout
from tests.factories import Buyer
from tests.support.processes import wait_until


def _payment(stripe_payment_intent_id: str) -> PaymentIntent:
    db.session.remove()
    return db.session.execute(
        select(PaymentIntent).where(
            PaymentIntent.stripe_payment_intent_id == stripe_payment_intent_id
        )
    ).scalar_one()


def test_payment_after_the_checkout_ended_is_refunded(
    client: Any, buyer: Buyer, catalog: Catalog, worker: Any, stripe_emulator: Any
) -> None:
    checkout = open_checkout(client, buyer, catalog.monthly.id)
    row = fetch(checkout["id"])
    stripe = stripe_emulator.client()
    # The expiry canceled the subscription, but the buyer paid before its invoice was voided.
    canceled = stripe.v1.subscriptions.cancel(
        row.stripe_subscription_id,
        params={"cancellation_details": {"comment": EXPIRY_CANCELLATION_COMMENT}},
    )
    with db.transaction() as session:
        apply_subscription(session, canceled)
    assert fetch(checkout["id"]).status == "expired"
    paid = stripe.v1.payment_intents.confirm(
        row.stripe_payment_intent_id, params={"payment_method": "pm_card_visa"}
    )
    assert paid.status == "succeeded"

    with db.transaction() as session:
        apply_payment_intent(session, paid)

    refunded = wait_until(
        lambda: (p := _payment(paid.id)).amount_refunded == p.amount and p,
        what="the orphaned payment to be refunded",
    )
    assert refunded.refunded_at is not None
    charge = stripe.v1.charges.retrieve(paid.latest_charge)
    assert charge.refunded and charge.amount_refunded == paid.amount
    assert fetch(checkout["id"]).status == "expired"
