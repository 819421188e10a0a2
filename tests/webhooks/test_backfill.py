"""Events Stripe could not deliver, or never sent, are listed from Stripe and applied."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from app.db import db
from app.webhooks import service
from app.webhooks.backfill import backfill_events
from models import CheckoutSession, StripeEvent
from tests.support.emulator import WebhookReceiver
from tests.support.processes import wait_until
from tests.webhooks.conftest import Shop, prepared_checkout


def _open_paid_checkout(client: Any, shop: Shop, stripe_emulator: Any) -> uuid.UUID:
    checkout = prepared_checkout(client, shop, shop.one_time)
    # Paid in Stripe's iframe: only Stripe's events can tell us.
    stripe_emulator.client().v1.payment_intents.confirm(
        checkout.stripe_payment_intent_id, params={"payment_method": "pm_card_visa"}
    )
    return checkout.id


def _apply_stored(stripe_event_ids: list[str]) -> None:
    for stripe_event_id in stripe_event_ids:
        service.process_stored_event(stripe_event_id)


def _status(checkout_id: uuid.UUID) -> str:
    db.session.remove()
    checkout = db.session.get(CheckoutSession, checkout_id)
    assert checkout is not None
    return checkout.status


def test_events_stripe_failed_to_deliver_are_stored_and_applied(
    client: Any, shop: Shop, stripe_emulator: Any
) -> None:
    failing = WebhookReceiver(fail_first=10_000)
    try:
        stripe_emulator.webhook_settings(retry_delays=[0.05], timeout_seconds=1)
        stripe_emulator.register_webhook(failing.url, "whsec_unreachable_endpoint")
        checkout_id = _open_paid_checkout(client, shop, stripe_emulator)
        paid_events = lambda: stripe_emulator.events(type="payment_intent.succeeded")  # noqa: E731
        wait_until(lambda: failing.received and not any(e["delivered"] for e in paid_events()))

        stored = backfill_events()

        assert any(e["id"] in stored for e in paid_events())
        _apply_stored(stored)
        assert _status(checkout_id) == "succeeded"
        # Run again: nothing new, nothing stored twice.
        assert backfill_events() == []
    finally:
        failing.close()


def test_recent_events_no_endpoint_received_are_stored(
    client: Any, shop: Shop, stripe_emulator: Any
) -> None:
    checkout_id = _open_paid_checkout(client, shop, stripe_emulator)

    stored = backfill_events(settle_seconds=0)

    db.session.remove()
    kinds = set(
        db.session.execute(
            select(StripeEvent.type).where(StripeEvent.stripe_event_id.in_(stored))
        ).scalars()
    )
    assert "payment_intent.succeeded" in kinds
    _apply_stored(stored)
    assert _status(checkout_id) == "succeeded"
