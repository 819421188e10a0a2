"""`stripe.process_event`: every handled type, exactly-once effects, failures an operator sees."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.db import db
from app.webhooks import handlers, service
from models import CheckoutSession, Entitlement, PaymentIntent, StripeEvent
from models.stripe_event import FAILED, IGNORED, PENDING, PROCESSED
from tests.support.stripe_webhooks import envelope
from tests.webhooks.conftest import (
    count,
    inbox,
    open_checkout,
    process,
    stripe_fixture,
    succeeded_payment_intent,
)

# Each handled type and the fixture object its `data.object` holds.
HANDLED = {
    "payment_intent.succeeded": "payment_intent",
    "payment_intent.payment_failed": "payment_intent",
    "setup_intent.succeeded": "setup_intent",
    "invoice.paid": "invoice",
    "invoice.payment_failed": "invoice",
    "customer.subscription.created": "subscription",
    "customer.subscription.updated": "subscription",
    "customer.subscription.deleted": "subscription",
    "checkout.session.completed": "checkout.session",
    "charge.refunded": "charge",
    "payment_intent.canceled": "payment_intent",
    "setup_intent.setup_failed": "setup_intent",
    "charge.refund.updated": "refund",
    "charge.dispute.created": "dispute",
    "charge.dispute.updated": "dispute",
    "charge.dispute.closed": "dispute",
}


def test_every_handled_type_has_a_handler():
    assert set(handlers.HANDLERS) == service.HANDLED_EVENT_TYPES == set(HANDLED)


class TestStripeFixtures:
    @pytest.mark.parametrize("event_type", sorted(HANDLED))
    def test_handled_type_about_an_unknown_object_is_processed_with_a_note(
        self, post_event, event_type
    ):
        event = envelope(event_type, stripe_fixture(HANDLED[event_type]))
        assert post_event(event).status_code == 200

        assert process(event["id"]) == "processed"

        row = inbox(event["id"])
        assert row is not None
        assert row.status == PROCESSED
        assert row.attempts == 1
        assert row.processed_at is not None
        assert row.last_error is not None and "not created by BillingOS" in row.last_error

    def test_unknown_type_is_stored_ignored_and_never_processed(self, post_event):
        event = envelope("payout.paid", stripe_fixture("payout"))
        assert post_event(event).status_code == 200
        assert process(event["id"]) == "already_done"
        row = inbox(event["id"])
        assert row is not None
        assert row.status == IGNORED
        assert row.attempts == 0

    def test_event_missing_from_the_inbox_is_a_no_op(self, app_context):
        assert process("evt_never_stored") == "missing"


class TestPaymentSucceeded:
    def test_checkout_succeeds_once_and_grants_the_purchase(self, post_event, shop):
        checkout = open_checkout(shop, shop.one_time)
        event = envelope("payment_intent.succeeded", succeeded_payment_intent(checkout))
        post_event(event)

        assert process(event["id"]) == "processed"
        assert process(event["id"]) == "already_done"

        db.session.expire_all()
        checkout = db.session.get(CheckoutSession, checkout.id)
        assert checkout.status == "succeeded"
        assert checkout.version == 2
        assert count(PaymentIntent) == 1
        payment = db.session.execute(select(PaymentIntent)).scalar_one()
        assert (payment.status, payment.amount, payment.checkout_session_id) == (
            "succeeded",
            2900,
            checkout.id,
        )
        assert count(Entitlement, Entitlement.feature_key == "export") == 1
        row = inbox(event["id"])
        assert row.status == PROCESSED and row.last_error is None and row.attempts == 1

    def test_a_second_event_for_the_same_payment_changes_nothing(self, post_event, shop):
        checkout = open_checkout(shop, shop.one_time)
        first = envelope("payment_intent.succeeded", succeeded_payment_intent(checkout))
        # Stripe may send a new event (new id) about the same state, e.g. after a replay.
        second = envelope("payment_intent.succeeded", succeeded_payment_intent(checkout))
        post_event(first)
        post_event(second)
        process(first["id"])
        process(second["id"])

        db.session.expire_all()
        assert db.session.get(CheckoutSession, checkout.id).version == 2
        assert count(PaymentIntent) == 1
        assert count(Entitlement) == 1


class TestRefunds:
    def _paid(self, post_event, shop):  # type: ignore[no-untyped-def]
        checkout = open_checkout(shop, shop.one_time)
        event = envelope("payment_intent.succeeded", succeeded_payment_intent(checkout))
        post_event(event)
        process(event["id"])
        return checkout

    def _refund_event(self, checkout, amount_refunded):  # type: ignore[no-untyped-def]
        charge = stripe_fixture("charge")
        charge.update(
            amount=checkout.amount,
            amount_captured=checkout.amount,
            amount_refunded=amount_refunded,
            refunded=amount_refunded == checkout.amount,
            payment_intent=checkout.stripe_payment_intent_id,
            currency=checkout.currency,
        )
        return envelope("charge.refunded", charge)

    def test_full_refund_of_a_purchase_revokes_its_entitlements(self, post_event, shop):
        checkout = self._paid(post_event, shop)
        assert count(Entitlement) == 1

        event = self._refund_event(checkout, 2900)
        post_event(event)
        assert process(event["id"]) == "processed"

        payment = db.session.execute(select(PaymentIntent)).scalar_one()
        assert payment.amount_refunded == 2900
        assert payment.refunded_at is not None
        assert count(Entitlement) == 0

    def test_partial_refund_keeps_the_purchase(self, post_event, shop):
        checkout = self._paid(post_event, shop)
        event = self._refund_event(checkout, 500)
        post_event(event)
        process(event["id"])

        payment = db.session.execute(select(PaymentIntent)).scalar_one()
        assert payment.amount_refunded == 500
        assert count(Entitlement) == 1

    def test_refund_events_in_any_order_keep_the_largest_amount(self, post_event, shop):
        checkout = self._paid(post_event, shop)
        later = self._refund_event(checkout, 2900)
        earlier = self._refund_event(checkout, 500)
        post_event(later)
        post_event(earlier)
        process(later["id"])
        process(earlier["id"])

        payment = db.session.execute(select(PaymentIntent)).scalar_one()
        assert payment.amount_refunded == 2900
        assert count(Entitlement) == 0


class TestFailures:
    def test_poison_event_fails_at_once_and_is_visible(self, post_event, shop):
        checkout = open_checkout(shop, shop.one_time)
        paid = envelope("payment_intent.succeeded", succeeded_payment_intent(checkout))
        post_event(paid)
        process(paid["id"])
        charge = stripe_fixture("charge")
        charge.update(payment_intent=checkout.stripe_payment_intent_id, amount_refunded="lots")
        poison = envelope("charge.refunded", charge)
        post_event(poison)

        assert process(poison["id"]) == "failed"

        row = inbox(poison["id"])
        assert row.status == FAILED
        assert row.attempts == 1
        assert row.processed_at is None
        assert "ValueError" in row.last_error
        # The failed attempt changed nothing.
        assert db.session.execute(select(PaymentIntent)).scalar_one().amount_refunded == 0
        assert [e.stripe_event_id for e in service.failed_events(db.session())] == [poison["id"]]

    def test_replay_gives_a_failed_event_fresh_attempts(self, post_event, shop):
        event = envelope("invoice.paid", stripe_fixture("invoice"))
        post_event(event)
        db.session.execute(
            StripeEvent.__table__.update()
            .where(StripeEvent.stripe_event_id == event["id"])
            .values(status=FAILED, attempts=8, last_error="TransientStripeError: down")
        )
        db.session.commit()

        service.replay_event(db.session(), event["id"])
        db.session.commit()
        row = inbox(event["id"])
        assert (row.status, row.attempts, row.last_error) == (PENDING, 0, None)
        assert process(event["id"]) == "processed"

    def test_processed_event_replays_only_when_forced(self, post_event, shop):
        checkout = open_checkout(shop, shop.one_time)
        event = envelope("payment_intent.succeeded", succeeded_payment_intent(checkout))
        post_event(event)
        process(event["id"])

        with pytest.raises(service.EventNotReplayable):
            service.replay_event(db.session(), event["id"])
        db.session.rollback()
        service.replay_event(db.session(), event["id"], force=True)
        db.session.commit()
        assert process(event["id"]) == "processed"

        db.session.expire_all()
        assert db.session.get(CheckoutSession, checkout.id).version == 2
        assert count(PaymentIntent) == 1


def test_retry_countdown_grows_and_is_capped():
    assert service.retry_countdown(1, jitter=0.0) == 1.0
    assert service.retry_countdown(1, jitter=0.999) < 2.0
    assert service.retry_countdown(4, jitter=0.0) == 8.0
    assert service.retry_countdown(30, jitter=0.999) <= service.RETRY_CAP_SECONDS
