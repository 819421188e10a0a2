"""`POST /v1/checkout/{client_secret}/confirm`, expiry, and who may see a checkout."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import stripe as stripe_lib
from flask import Flask

from app.db import db
from models import Subscription
from tests.checkout.conftest import (
    Catalog,
    backdate,
    confirm,
    create,
    fetch,
    open_checkout,
    settle,
    status_of,
    wait_until,
)
from tests.factories import Buyer, Merchant, make_buyer, make_merchant


def _confirmations(stripe_emulator: Any, stripe_payment_intent_id: str) -> list[dict[str, Any]]:
    return stripe_emulator.requests(path=f"/v1/payment_intents/{stripe_payment_intent_id}/confirm")


class TestConfirmGuards:
    def test_two_concurrent_confirms_reach_stripe_once(
        self, app: Flask, client: Any, buyer: Buyer, catalog: Catalog, worker: Any,
        stripe_emulator: Any,
    ) -> None:  # fmt: skip
        checkout = open_checkout(client, buyer, catalog.one_time.id)
        barrier = threading.Barrier(2)
        codes: list[int] = []
        lock = threading.Lock()

        def pay() -> None:
            with app.test_client() as own_client:
                barrier.wait()
                response = confirm(own_client, buyer, checkout["client_secret"], "pm_card_visa")
                with lock:
                    codes.append(response.status_code)
                    if response.status_code == 409:
                        assert response.get_json()["code"] == "checkout_not_confirmable"
                db.session.remove()

        threads = [threading.Thread(target=pay) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(codes) == [202, 409]

        assert settle(client, buyer, checkout["id"])["status"] == "succeeded"
        intent_id = fetch(checkout["id"]).stripe_payment_intent_id
        assert intent_id is not None
        assert len(_confirmations(stripe_emulator, intent_id)) == 1

    def test_succeeded_checkout_is_not_confirmable(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any
    ) -> None:
        checkout = open_checkout(client, buyer, catalog.one_time.id)
        confirm(client, buyer, checkout["client_secret"], "pm_card_visa")
        assert settle(client, buyer, checkout["id"])["status"] == "succeeded"
        again = confirm(client, buyer, checkout["client_secret"], "pm_card_visa")
        assert again.status_code == 409
        assert again.get_json()["code"] == "checkout_not_confirmable"

    def test_body_needs_exactly_one_payment_method(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any
    ) -> None:
        checkout = open_checkout(client, buyer, catalog.one_time.id)
        url = f"/v1/checkout/{checkout['client_secret']}/confirm"
        both = {"payment_method_id": "pm_card_visa", "confirmation_token_id": "ctoken_1"}
        assert client.post(url, json=both, headers=buyer.headers).status_code == 422
        assert client.post(url, json={}, headers=buyer.headers).status_code == 422
        assert status_of(client, buyer, checkout["id"])["status"] == "open"

    def test_unknown_client_secret(self, client: Any, buyer: Buyer) -> None:
        response = confirm(client, buyer, "pi_123_secret_456", "pm_card_visa")
        assert response.status_code == 404


class TestIsolation:
    def test_another_customer_sees_nothing(
        self, client: Any, merchant: Merchant, buyer: Buyer, catalog: Catalog, worker: Any
    ) -> None:
        checkout = open_checkout(client, buyer, catalog.one_time.id)
        stranger = make_buyer(merchant, external_id="user_2")
        status = client.get(f"/v1/checkout/{checkout['id']}/status", headers=stranger.headers)
        assert status.status_code == 404
        stolen = confirm(client, stranger, checkout["client_secret"], "pm_card_visa")
        assert stolen.status_code == 404
        assert status_of(client, buyer, checkout["id"])["status"] == "open"

        # The merchant sees it (without the client secret); another merchant does not.
        own = client.get(f"/v1/checkouts/{checkout['id']}", headers=merchant.headers)
        assert own.status_code == 200
        assert "client_secret" not in own.get_json()
        assert own.get_json()["customer_external_id"] == "user_1"
        other = make_merchant("Globex")
        assert (
            client.get(f"/v1/checkouts/{checkout['id']}", headers=other.headers).status_code == 404
        )
        assert client.get("/v1/checkouts", headers=other.headers).get_json()["data"] == []

    def test_merchant_lists_filter_by_status_and_customer(
        self, client: Any, merchant: Merchant, buyer: Buyer, catalog: Catalog
    ) -> None:
        other = make_buyer(merchant, external_id="user_2")
        mine = create(client, buyer, catalog.one_time.id).get_json()
        create(client, other, catalog.one_time.id)
        listed = client.get("/v1/checkouts?status=pending", headers=merchant.headers).get_json()
        assert len(listed["data"]) == 2 and listed["has_more"] is False
        filtered = client.get(
            "/v1/checkouts?customer_external_id=user_1", headers=merchant.headers
        ).get_json()
        assert [c["id"] for c in filtered["data"]] == [mine["id"]]
        page = client.get("/v1/checkouts?limit=1", headers=merchant.headers).get_json()
        assert len(page["data"]) == 1 and page["has_more"] is True
        assert client.get("/v1/checkouts?status=nope", headers=merchant.headers).status_code == 422


class TestExpiry:
    def test_beat_expires_and_cancels_the_intent(
        self, app: Flask, client: Any, buyer: Buyer, catalog: Catalog, worker: Any,
        stripe_emulator: Any,
    ) -> None:  # fmt: skip
        checkout = open_checkout(client, buyer, catalog.one_time.id)
        fresh = open_checkout(client, buyer, catalog.monthly.id)
        backdate(checkout["id"])

        app.extensions["celery"].send_task("checkout.expire_overdue")
        expired = wait_until(
            lambda: (
                (body := status_of(client, buyer, checkout["id"]))["status"] == "expired" and body
            ),
            what="checkout to expire",
        )
        assert expired["client_secret"] is None
        intent = stripe_emulator.client().v1.payment_intents.retrieve(
            fetch(checkout["id"]).stripe_payment_intent_id
        )
        assert intent.status == "canceled"
        assert intent.cancellation_reason == "abandoned"
        # A checkout within its hour is left alone.
        assert status_of(client, buyer, fresh["id"])["status"] == "open"

        response = confirm(client, buyer, checkout["client_secret"], "pm_card_visa")
        assert response.status_code == 410
        assert response.get_json()["code"] == "checkout_expired"

    def test_expired_subscription_checkout_cancels_the_subscription_and_voids_its_invoice(
        self, app: Flask, client: Any, buyer: Buyer, catalog: Catalog, worker: Any,
        stripe_emulator: Any,
    ) -> None:  # fmt: skip
        checkout = open_checkout(client, buyer, catalog.monthly.id)
        backdate(checkout["id"])
        app.extensions["celery"].send_task("checkout.expire_overdue")
        wait_until(
            lambda: status_of(client, buyer, checkout["id"])["status"] == "expired",
            what="checkout to expire",
        )
        expired = fetch(checkout["id"])
        stripe = stripe_emulator.client()
        subscription = stripe.v1.subscriptions.retrieve(expired.stripe_subscription_id)
        assert subscription.status == "canceled"
        db.session.remove()
        row = db.session.query(Subscription).filter_by(stripe_subscription_id=subscription.id).one()
        assert row.status == "canceled"
        # Canceling leaves the invoice payable in Stripe; the expiry voids it, so the client
        # secret still on the buyer's page charges nothing.
        assert stripe.v1.invoices.retrieve(subscription.latest_invoice).status == "void"
        with pytest.raises(stripe_lib.InvalidRequestError):
            stripe.v1.payment_intents.confirm(
                expired.stripe_payment_intent_id, params={"payment_method": "pm_card_visa"}
            )

    def test_past_expiry_confirm_is_gone_before_the_sweep(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any
    ) -> None:
        checkout = open_checkout(client, buyer, catalog.one_time.id)
        backdate(checkout["id"])
        response = confirm(client, buyer, checkout["client_secret"], "pm_card_visa")
        assert response.status_code == 410
