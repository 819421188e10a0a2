"""End-to-end checkout scenarios through the API, a real worker and the Stripe emulator."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.db import db
from models import Customer, PaymentIntent, Subscription
from tests.checkout.conftest import (
    Catalog,
    confirm,
    create,
    fetch,
    open_checkout,
    settle,
    status_of,
    wait_until,
)
from tests.factories import Buyer, Merchant


def _payments(checkout_id: str) -> list[PaymentIntent]:
    db.session.remove()
    return list(
        db.session.execute(
            select(PaymentIntent).where(PaymentIntent.checkout_session_id == checkout_id)
        ).scalars()
    )


class TestOneTimePayment:
    def test_card_payment_succeeds_and_is_recorded(
        self,
        client: Any,
        merchant: Merchant,
        buyer: Buyer,
        catalog: Catalog,
        worker: Any,
        stripe_emulator: Any,
    ) -> None:
        pending = create(client, buyer, catalog.one_time.id)
        assert pending.status_code == 202
        assert pending.get_json()["status"] == "pending"
        assert pending.get_json()["client_secret"] is None

        checkout = wait_until(
            lambda: (
                (body := status_of(client, buyer, pending.get_json()["id"]))["status"] == "open"
                and body
            ),
            what="checkout to open",
        )
        assert checkout["intent_type"] == "payment"
        assert checkout["amount"] == 2900 and checkout["currency"] == "usd"

        accepted = confirm(client, buyer, checkout["client_secret"], "pm_card_visa")
        assert accepted.status_code == 202
        assert accepted.get_json()["status"] == "processing"

        done = settle(client, buyer, checkout["id"])
        assert done["status"] == "succeeded"
        assert done["last_error"] is None
        assert done["version"] > checkout["version"]

        [payment] = _payments(checkout["id"])
        assert payment.status == "succeeded"
        assert payment.amount == 2900
        assert payment.succeeded_at is not None
        row = fetch(checkout["id"])
        assert row.stripe_payment_intent_id == payment.stripe_payment_intent_id

        # Stripe holds the PaymentIntent with our metadata on the customer we stored.
        intent = stripe_emulator.client().v1.payment_intents.retrieve(
            payment.stripe_payment_intent_id
        )
        assert intent.status == "succeeded"
        assert intent.metadata["billingos_checkout_id"] == checkout["id"]
        assert intent.metadata["billingos_organization_id"] == str(buyer.organization_id)
        customer = db.session.get(Customer, buyer.customer_id)
        assert customer is not None and intent.customer == customer.stripe_customer_id

        # The merchant sees it in the payment history.
        history = client.get("/v1/payments", headers=merchant.headers).get_json()
        assert [p["status"] for p in history["data"]] == ["succeeded"]
        assert history["data"][0]["checkout_id"] == checkout["id"]

    def test_declined_card_fails_then_another_card_succeeds(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any
    ) -> None:
        checkout = open_checkout(client, buyer, catalog.one_time.id)
        assert (
            confirm(
                client, buyer, checkout["client_secret"], "pm_card_visa_chargeDeclined"
            ).status_code
            == 202
        )

        failed = settle(client, buyer, checkout["id"])
        assert failed["status"] == "failed"
        assert failed["last_error"]["code"] == "card_declined"
        assert failed["last_error"]["decline_code"] == "generic_decline"
        assert failed["client_secret"] == checkout["client_secret"]

        retry = confirm(client, buyer, checkout["client_secret"], "pm_card_mastercard")
        assert retry.status_code == 202
        done = settle(client, buyer, checkout["id"])
        assert done["status"] == "succeeded"
        assert done["last_error"] is None
        # One PaymentIntent for the checkout, across both attempts.
        [payment] = _payments(checkout["id"])
        assert payment.status == "succeeded"


class TestSubscription:
    @pytest.mark.parametrize("interval", ["month", "year"])
    def test_succeeds_once_the_subscription_is_active(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any, interval: str
    ) -> None:
        price = catalog.monthly if interval == "month" else catalog.yearly
        checkout = open_checkout(client, buyer, price.id)
        assert checkout["intent_type"] == "payment"
        assert checkout["amount"] == price.amount
        # The first invoice's PaymentIntent secret; the subscription waits for its payment.
        assert checkout["client_secret"].startswith("pi_")
        assert checkout["subscription"]["status"] == "incomplete"
        assert checkout["subscription"]["price_id"] == str(price.id)

        assert confirm(client, buyer, checkout["client_secret"], "pm_card_visa").status_code == 202
        done = settle(client, buyer, checkout["id"])
        assert done["status"] == "succeeded"
        subscription = done["subscription"]
        assert subscription["status"] == "active"
        assert subscription["product_id"] == str(catalog.pro.id)
        assert subscription["current_period_end"] is not None

        db.session.remove()
        row = db.session.execute(
            select(Subscription).where(Subscription.checkout_session_id == checkout["id"])
        ).scalar_one()
        assert str(row.id) == subscription["id"]
        assert row.status == "active"
        [payment] = _payments(checkout["id"])
        assert payment.status == "succeeded" and payment.amount == price.amount
        assert row.payment_intent_id == payment.id
        assert payment.stripe_invoice_id is not None
        days = (row.current_period_end - row.current_period_start).days
        assert days >= 365 if interval == "year" else 28 <= days <= 31

    def test_declined_first_invoice_keeps_it_incomplete_until_another_card_pays(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any
    ) -> None:
        checkout = open_checkout(client, buyer, catalog.monthly.id)
        confirm(
            client, buyer, checkout["client_secret"], "pm_card_visa_chargeDeclinedInsufficientFunds"
        )
        failed = settle(client, buyer, checkout["id"])
        assert failed["status"] == "failed"
        assert failed["last_error"]["decline_code"] == "insufficient_funds"
        assert failed["subscription"]["status"] == "incomplete"

        confirm(client, buyer, checkout["client_secret"], "pm_card_visa")
        done = settle(client, buyer, checkout["id"])
        assert done["status"] == "succeeded"
        assert done["subscription"]["status"] == "active"


class TestTrial:
    def test_trial_collects_the_card_without_a_charge(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any, stripe_emulator: Any
    ) -> None:
        checkout = open_checkout(client, buyer, catalog.trial.id)
        assert checkout["intent_type"] == "setup"
        assert checkout["client_secret"].startswith("seti_")
        assert checkout["subscription"]["status"] == "trialing"

        assert confirm(client, buyer, checkout["client_secret"], "pm_card_visa").status_code == 202
        done = settle(client, buyer, checkout["id"])
        assert done["status"] == "succeeded"
        assert done["subscription"]["status"] == "trialing"
        assert done["subscription"]["trial_end"] is not None

        # No money moved: no PaymentIntent was created or confirmed for it.
        assert _payments(checkout["id"]) == []
        posted = [r for r in stripe_emulator.requests(path="/v1/payment_intents")]
        assert posted == []
        stripe_subscription = stripe_emulator.client().v1.subscriptions.retrieve(
            fetch(checkout["id"]).stripe_subscription_id
        )
        assert stripe_subscription.status == "trialing"
        assert stripe_subscription.default_payment_method is not None


class TestThreeDSecure:
    def test_requires_action_then_succeeds_after_authentication(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any, stripe_emulator: Any
    ) -> None:
        checkout = open_checkout(client, buyer, catalog.one_time.id)
        confirm(client, buyer, checkout["client_secret"], "pm_card_threeDSecure2Required")
        challenged = settle(client, buyer, checkout["id"])
        assert challenged["status"] == "requires_action"
        assert challenged["next_action"]["type"] == "use_stripe_sdk"
        assert challenged["client_secret"] == checkout["client_secret"]

        # The buyer completes the challenge in Stripe.js; the SDK then confirms again, and
        # Stripe's view of the intent (already succeeded) settles the checkout.
        stripe_emulator.authenticate(
            "payment_intent", fetch(checkout["id"]).stripe_payment_intent_id
        )
        again = confirm(client, buyer, checkout["client_secret"], "pm_card_threeDSecure2Required")
        assert again.status_code == 202
        done = settle(client, buyer, checkout["id"])
        assert done["status"] == "succeeded"
        assert done["next_action"] is None

    def test_reconcile_settles_an_authenticated_payment(
        self,
        app: Any,
        client: Any,
        buyer: Buyer,
        catalog: Catalog,
        worker: Any,
        stripe_emulator: Any,
    ) -> None:
        checkout = open_checkout(client, buyer, catalog.monthly.id)
        confirm(client, buyer, checkout["client_secret"], "pm_card_authenticationRequired")
        assert settle(client, buyer, checkout["id"])["status"] == "requires_action"

        stripe_emulator.authenticate(
            "payment_intent", fetch(checkout["id"]).stripe_payment_intent_id
        )
        app.extensions["celery"].send_task("checkout.reconcile", args=[checkout["id"]])
        done = wait_until(
            lambda: (
                (body := status_of(client, buyer, checkout["id"]))["status"] == "succeeded" and body
            ),
            what="reconcile to settle the checkout",
        )
        assert done["subscription"]["status"] == "active"


class TestStatus:
    def test_etag_and_if_none_match(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any
    ) -> None:
        checkout = open_checkout(client, buyer, catalog.one_time.id)
        first = client.get(f"/v1/checkout/{checkout['id']}/status", headers=buyer.headers)
        tag = first.headers["ETag"]
        assert tag
        unchanged = client.get(
            f"/v1/checkout/{checkout['id']}/status",
            headers={**buyer.headers, "If-None-Match": tag},
        )
        assert unchanged.status_code == 304
        assert unchanged.data == b""

        confirm(client, buyer, checkout["client_secret"], "pm_card_visa")
        settle(client, buyer, checkout["id"])
        changed = client.get(
            f"/v1/checkout/{checkout['id']}/status",
            headers={**buyer.headers, "If-None-Match": tag},
        )
        assert changed.status_code == 200
        assert changed.headers["ETag"] != tag
