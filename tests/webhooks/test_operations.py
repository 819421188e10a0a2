"""What an operator sees and does: transient failures retried and counted, poison events
`failed`, the events CLI (`flask billingos events --failed`, `… events replay ID`)."""

from __future__ import annotations

import json

from app.db import db
from app.webhooks import service
from models import CheckoutSession, StripeEvent
from models.stripe_event import FAILED, PENDING, PROCESSED
from tests.support.stripe_webhooks import envelope
from tests.webhooks.conftest import (
    inbox,
    open_checkout,
    process,
    queued_event_ids,
    stripe_fixture,
)


def declined_payment_intent(checkout: CheckoutSession, stripe_id: str) -> dict:
    payment_intent = stripe_fixture("payment_intent")
    payment_intent.update(
        id=stripe_id,
        amount=checkout.amount,
        currency=checkout.currency,
        status="requires_payment_method",
        next_action=None,
        last_payment_error={"type": "card_error", "code": "card_declined"},
        metadata={"billingos_checkout_id": str(checkout.id)},
    )
    return payment_intent


def stripe_payment_intent(stripe_emulator) -> str:  # type: ignore[no-untyped-def]
    stripe = stripe_emulator.client()
    created = stripe.v1.payment_intents.create(params={"amount": 2900, "currency": "usd"})
    return str(created.id)


class TestTransientFailures:
    def test_stripe_errors_are_retried_and_counted(self, stripe_emulator, post_event, shop):
        stripe_id = stripe_payment_intent(stripe_emulator)
        checkout = open_checkout(shop, shop.one_time, stripe_payment_intent_id=stripe_id)
        checkout_id = checkout.id
        event = envelope(
            "payment_intent.payment_failed", declined_payment_intent(checkout, stripe_id)
        )
        post_event(event)
        # The re-fetch of the (non-final) PaymentIntent fails for one whole attempt: the
        # request and the gateway's own network retries.
        stripe_emulator.set_faults("error_500", paths=["/v1/payment_intents"], count=3)

        assert process(event["id"]) == "processed"

        row = inbox(event["id"])
        assert (row.status, row.attempts) == (PROCESSED, 2)
        db.session.expire_all()
        # Stripe's current state was applied: created, never confirmed, no decline to show.
        assert db.session.get(CheckoutSession, checkout_id).status == "open"

    def test_the_last_allowed_attempt_marks_the_event_failed(
        self, stripe_emulator, post_event, shop
    ):
        stripe_id = stripe_payment_intent(stripe_emulator)
        checkout = open_checkout(shop, shop.one_time, stripe_payment_intent_id=stripe_id)
        event = envelope(
            "payment_intent.payment_failed", declined_payment_intent(checkout, stripe_id)
        )
        post_event(event)
        # As if it had already failed every attempt but one.
        db.session.execute(
            StripeEvent.__table__.update()
            .where(StripeEvent.stripe_event_id == event["id"])
            .values(attempts=service.MAX_ATTEMPTS - 1)
        )
        db.session.commit()
        stripe_emulator.set_faults("error_500", paths=["/v1/payment_intents"], count=3)

        assert process(event["id"]) == "failed"

        row = inbox(event["id"])
        assert (row.status, row.attempts) == (FAILED, service.MAX_ATTEMPTS)
        assert row.last_error.startswith("TransientStripeError")


class TestEventsCli:
    def test_failed_events_are_listed_and_replayed(self, app, post_event, shop):
        failed = envelope("invoice.paid", stripe_fixture("invoice"))
        fine = envelope("invoice.paid", stripe_fixture("invoice"))
        post_event(failed)
        post_event(fine)
        db.session.execute(
            StripeEvent.__table__.update()
            .where(StripeEvent.stripe_event_id == failed["id"])
            .values(status=FAILED, attempts=8, last_error="TransientStripeError: Stripe is down")
        )
        db.session.commit()
        runner = app.test_cli_runner()

        listed = runner.invoke(args=["billingos", "events", "--failed", "--json"])
        assert listed.exit_code == 0, listed.output
        rows = [json.loads(line) for line in listed.output.splitlines()]
        assert [(r["id"], r["attempts"], r["last_error"]) for r in rows] == [
            (failed["id"], 8, "TransientStripeError: Stripe is down")
        ]
        human = runner.invoke(args=["billingos", "events", "--failed"])
        assert failed["id"] in human.output and "Stripe is down" in human.output

        replayed = runner.invoke(args=["billingos", "events", "replay", failed["id"]])
        assert replayed.exit_code == 0, replayed.output
        row = inbox(failed["id"])
        assert (row.status, row.attempts, row.last_error) == (PENDING, 0, None)
        assert failed["id"] in queued_event_ids()
        assert process(failed["id"]) == "processed"
        assert runner.invoke(args=["billingos", "events", "--failed"]).output.strip() == (
            "No failed events."
        )

    def test_replay_by_inbox_row_id_and_refusals(self, app, post_event, shop):
        event = envelope("invoice.paid", stripe_fixture("invoice"))
        post_event(event)
        process(event["id"])
        runner = app.test_cli_runner()

        unknown = runner.invoke(args=["billingos", "events", "replay", "evt_nope"])
        assert unknown.exit_code != 0 and "No stored Stripe event" in unknown.output
        processed = runner.invoke(args=["billingos", "events", "replay", event["id"]])
        assert processed.exit_code != 0 and "already processed" in processed.output

        row_id = str(inbox(event["id"]).id)
        forced = runner.invoke(args=["billingos", "events", "replay", row_id, "--force"])
        assert forced.exit_code == 0, forced.output
        assert inbox(event["id"]).status == PENDING
