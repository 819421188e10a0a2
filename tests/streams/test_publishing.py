"""Every committed change of a checkout or subscription is published once, after commit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.db import db
from app.realtime import checkout_channel, checkout_status, customer_channel
from models import CheckoutSession, Subscription
from tests.streams.conftest import advance


def _messages(pubsub: Any, timeout: float = 0.5) -> list[dict[str, Any]]:
    found = []
    while True:
        message = pubsub.get_message(timeout=timeout)
        if message is None:
            return found
        found.append(json.loads(message["data"]))


class TestCheckoutPublishing:
    def test_each_committed_transition_is_published_with_the_status_object(
        self, make_checkout, listen, client, buyer
    ) -> None:
        checkout = make_checkout()
        pubsub = listen(checkout_channel(checkout.id))

        advance(checkout.id, "open", client_secret="pi_123_secret_abc", intent_type="payment")
        advance(checkout.id, "processing")
        advance(checkout.id, "succeeded")

        messages = _messages(pubsub)
        assert [m["type"] for m in messages] == ["checkout.updated"] * 3
        assert [m["data"]["status"] for m in messages] == ["open", "processing", "succeeded"]
        assert [m["data"]["version"] for m in messages] == [2, 3, 4]
        with db.transaction() as session:
            row = session.get(CheckoutSession, checkout.id)
            assert row is not None
            expected = json.loads(checkout_status(session, row).model_dump_json())
        assert messages[-1]["data"] == expected

    def test_a_rolled_back_change_publishes_nothing(self, make_checkout, listen) -> None:
        checkout = make_checkout()
        pubsub = listen(checkout_channel(checkout.id))

        with pytest.raises(RuntimeError), db.transaction() as session:
            row = session.get(CheckoutSession, checkout.id)
            assert row is not None
            row.transition("open")
            session.flush()
            raise RuntimeError("the task failed after flushing")

        assert _messages(pubsub) == []

    def test_a_rolled_back_savepoint_drops_only_its_own_change(self, make_checkout, listen) -> None:
        first, second = make_checkout(), make_checkout()
        first_pubsub = listen(checkout_channel(first.id))
        second_pubsub = listen(checkout_channel(second.id))

        with db.transaction() as session:
            kept = session.get(CheckoutSession, first.id)
            assert kept is not None
            kept.transition("open")
            session.flush()
            savepoint = session.begin_nested()
            dropped = session.get(CheckoutSession, second.id)
            assert dropped is not None
            dropped.transition("open")
            session.flush()
            savepoint.rollback()

        assert [m["data"]["version"] for m in _messages(first_pubsub)] == [2]
        assert _messages(second_pubsub, timeout=0.2) == []

    def test_two_flushes_in_one_transaction_publish_the_last_state_once(
        self, make_checkout, listen
    ) -> None:
        checkout = make_checkout()
        pubsub = listen(checkout_channel(checkout.id))

        with db.transaction() as session:
            row = session.get(CheckoutSession, checkout.id)
            assert row is not None
            row.transition("open")
            session.flush()
            row.transition("processing")

        messages = _messages(pubsub)
        assert [(m["data"]["status"], m["data"]["version"]) for m in messages] == [
            ("processing", 3)
        ]

    def test_a_change_without_a_version_bump_is_not_published(self, make_checkout, listen) -> None:
        checkout = make_checkout()
        pubsub = listen(checkout_channel(checkout.id))

        with db.transaction() as session:
            row = session.get(CheckoutSession, checkout.id)
            assert row is not None
            row.prepare_attempts += 1  # bookkeeping the client never sees

        assert _messages(pubsub) == []


class TestSubscriptionPublishing:
    def test_subscription_rows_are_published_on_the_customer_channel(
        self, make_checkout, listen, buyer, merchant
    ) -> None:
        checkout = make_checkout(status="processing")
        pubsub = listen(customer_channel(buyer.customer_id))
        checkout_pubsub = listen(checkout_channel(checkout.id))

        with db.transaction() as session:
            row = session.get(CheckoutSession, checkout.id)
            assert row is not None
            subscription = Subscription(
                organization_id=merchant.id,
                customer_id=buyer.customer_id,
                product_id=row.product_id,
                price_id=row.price_id,
                checkout_session_id=row.id,
                status="active",
            )
            session.add(subscription)
            row.transition("succeeded", stripe_subscription_id="sub_test_1")

        (message,) = _messages(pubsub)
        assert message["type"] == "subscription.updated"
        assert message["data"]["status"] == "active"
        (checkout_message,) = _messages(checkout_pubsub)
        assert checkout_message["data"]["subscription"]["id"] == message["data"]["id"]

        with db.transaction() as session:
            stored = session.get(Subscription, subscription.id)
            assert stored is not None
            stored.cancel_at_period_end = True
        (update,) = _messages(pubsub)
        assert update["data"]["cancel_at_period_end"] is True
