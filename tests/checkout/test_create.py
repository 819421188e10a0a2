"""`POST /v1/checkout/create`: validation, idempotency, guards and the rate limit."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from app.db import db
from models import CheckoutSession, ProductPrice
from tests.checkout.conftest import Catalog, create, status_of, wait_until
from tests.factories import Buyer, Merchant, make_buyer, make_merchant, make_product
from tests.support.ownership import make_subscription


def _checkout_count() -> int:
    db.session.remove()
    return int(db.session.execute(select(func.count()).select_from(CheckoutSession)).scalar_one())


class TestPriceNotFound:
    def test_malformed_price_id(self, client: Any, buyer: Buyer) -> None:
        response = create(client, buyer, "not-a-uuid")
        assert response.status_code == 404
        assert response.get_json()["code"] == "price_not_found"
        assert response.mimetype == "application/problem+json"

    def test_unknown_price_id(self, client: Any, buyer: Buyer) -> None:
        response = create(client, buyer, "0b6f2a1e-8f5c-4a55-9a57-3c0b2d4a9e11")
        assert response.status_code == 404
        assert response.get_json()["code"] == "price_not_found"

    def test_archived_product(
        self, client: Any, merchant: Merchant, buyer: Buyer, catalog: Catalog
    ) -> None:
        archived = client.patch(
            f"/v1/products/{catalog.lifetime.id}", json={"active": False}, headers=merchant.headers
        )
        assert archived.status_code == 200
        response = create(client, buyer, catalog.one_time.id)
        assert response.status_code == 404
        assert response.get_json()["code"] == "price_not_found"

    def test_another_organizations_price(self, client: Any, buyer: Buyer) -> None:
        other = make_merchant("Globex")
        foreign = make_product(other, prices=[{"amount": 500, "currency": "usd"}])
        response = create(client, buyer, foreign.prices[0].id)
        assert response.status_code == 404
        assert response.get_json()["code"] == "price_not_found"
        assert _checkout_count() == 0


class TestChargeLimits:
    """The total (price amount x quantity) must be an amount Stripe can charge."""

    def test_a_total_above_stripes_maximum_is_a_422(
        self, client: Any, merchant: Merchant, buyer: Buyer
    ) -> None:
        product = make_product(merchant, prices=[{"amount": 60_000_000, "currency": "usd"}])
        response = create(client, buyer, product.prices[0].id, quantity=2)
        assert response.status_code == 422, response.get_json()
        problem = response.get_json()
        assert problem["code"] == "validation_error"
        assert "120000000 exceeds Stripe's maximum charge of 99999999 USD" in problem["detail"]
        assert problem["errors"][0]["loc"] == ["body", "quantity"]
        assert _checkout_count() == 0
        assert create(client, buyer, product.prices[0].id, quantity=1).status_code in (201, 202)

    def test_a_price_below_the_minimum_from_before_the_rule_is_a_422(
        self, client: Any, merchant: Merchant, buyer: Buyer
    ) -> None:
        product = make_product(merchant, prices=[{"amount": 50, "currency": "usd"}])
        # A price stored before prices were checked against Stripe's minimum.
        db.session.execute(
            update(ProductPrice).where(ProductPrice.id == product.prices[0].id).values(amount=20)
        )
        db.session.commit()
        response = create(client, buyer, product.prices[0].id)
        assert response.status_code == 422, response.get_json()
        assert "below Stripe's minimum charge of 50 USD" in response.get_json()["detail"]
        assert _checkout_count() == 0


class TestValidation:
    def test_unknown_field_and_bad_quantity(
        self, client: Any, buyer: Buyer, catalog: Catalog
    ) -> None:
        response = create(client, buyer, catalog.one_time.id, surprise=True)
        assert response.status_code == 422
        response = create(client, buyer, catalog.one_time.id, quantity=0)
        assert response.status_code == 422
        assert response.get_json()["errors"][0]["loc"] == ["body", "quantity"]

    def test_needs_a_session_token(self, client: Any, merchant: Merchant, catalog: Catalog) -> None:
        response = client.post(
            "/v1/checkout/create",
            json={"price_id": str(catalog.one_time.id)},
            headers=merchant.headers,
        )
        assert response.status_code == 403
        assert client.post("/v1/checkout/create", json={}).status_code == 401


class TestAlreadySubscribed:
    def test_active_subscription_to_the_product(
        self, client: Any, buyer: Buyer, catalog: Catalog
    ) -> None:
        make_subscription(buyer.customer_id, catalog.monthly, status="active")
        db.session.commit()
        # Any price of that product, including the other interval.
        response = create(client, buyer, catalog.yearly.id)
        assert response.status_code == 409
        assert response.get_json()["code"] == "already_subscribed"
        # Another product is fine.
        assert create(client, buyer, catalog.one_time.id).status_code == 202

    def test_canceled_subscription_does_not_block(
        self, client: Any, buyer: Buyer, catalog: Catalog
    ) -> None:
        make_subscription(buyer.customer_id, catalog.monthly, status="canceled")
        db.session.commit()
        assert create(client, buyer, catalog.monthly.id).status_code == 202


class TestIdempotency:
    def test_repeat_returns_the_same_checkout(
        self, client: Any, buyer: Buyer, catalog: Catalog
    ) -> None:
        first = create(client, buyer, catalog.one_time.id)
        again = create(client, buyer, catalog.one_time.id)
        assert first.status_code == 202
        assert again.status_code == 200
        assert again.get_json()["id"] == first.get_json()["id"]

        keyed = create(client, buyer, catalog.one_time.id, headers={"Idempotency-Key": "k-1"})
        assert keyed.status_code == 202
        assert keyed.get_json()["id"] != first.get_json()["id"]
        assert (
            create(
                client, buyer, catalog.one_time.id, headers={"Idempotency-Key": "k-1"}
            ).get_json()["id"]
            == keyed.get_json()["id"]
        )
        reused = create(client, buyer, catalog.monthly.id, headers={"Idempotency-Key": "k-1"})
        assert reused.status_code == 422
        assert reused.get_json()["code"] == "idempotency_key_reused"
        assert _checkout_count() == 2

    def test_the_same_key_with_another_body_is_refused_not_answered(
        self, client: Any, buyer: Buyer, catalog: Catalog
    ) -> None:
        key = {"Idempotency-Key": "order-7"}
        first = create(client, buyer, catalog.one_time.id, headers=key, quantity=1)
        assert first.status_code == 202
        # The same price, another quantity: not the request this key first answered.
        other = create(client, buyer, catalog.one_time.id, headers=key, quantity=3)
        assert other.status_code == 422
        assert other.mimetype == "application/problem+json"
        assert other.get_json()["code"] == "idempotency_key_reused"
        # The same body (fields in another order) is a repeat.
        body = {"quantity": 1, "price_id": str(catalog.one_time.id)}
        again = client.post("/v1/checkout/create", json=body, headers={**buyer.headers, **key})
        assert again.status_code == 200
        assert again.get_json()["id"] == first.get_json()["id"]
        assert _checkout_count() == 1

    def test_the_same_key_of_another_buyer_is_another_checkout(
        self, client: Any, merchant: Merchant, buyer: Buyer, catalog: Catalog
    ) -> None:
        other = make_buyer(merchant, external_id="user_2")
        key = {"Idempotency-Key": "shared"}
        mine = create(client, buyer, catalog.one_time.id, headers=key).get_json()
        theirs = create(client, other, catalog.one_time.id, headers=key).get_json()
        assert mine["id"] != theirs["id"]

    def test_twenty_concurrent_identical_creates_make_one_checkout_and_one_intent(
        self, app: Flask, buyer: Buyer, catalog: Catalog, worker: Any, stripe_emulator: Any
    ) -> None:
        results: list[tuple[int, str]] = []
        barrier = threading.Barrier(20)
        lock = threading.Lock()

        def buy() -> None:
            with app.test_client() as client:
                barrier.wait()
                response = create(client, buyer, catalog.one_time.id)
                with lock:
                    results.append((response.status_code, response.get_json()["id"]))
                db.session.remove()

        threads = [threading.Thread(target=buy) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert len(results) == 20
        assert len({checkout_id for _, checkout_id in results}) == 1
        assert sorted(code for code, _ in results) == [200] * 19 + [202]
        assert _checkout_count() == 1

        checkout_id = results[0][1]
        with app.test_client() as client:
            wait_until(
                lambda: status_of(client, buyer, checkout_id)["status"] == "open",
                what="checkout to open",
            )
        created = [
            r
            for r in stripe_emulator.requests(path="/v1/payment_intents", method="POST")
            if r["path"] == "/v1/payment_intents"
        ]
        assert len(created) == 1
        assert created[0]["idempotency_key"] == f"checkout:{checkout_id}:prepare"


class TestPreferWait:
    @pytest.mark.parametrize(
        "prefer",
        ["wait=11", "wait=99999999999999999999", "wait=abc", "wait=", "wait=-1", "wait=2.5"],
    )
    def test_a_malformed_or_too_long_wait_is_refused_before_anything_is_written(
        self, client: Any, buyer: Buyer, catalog: Catalog, prefer: str
    ) -> None:
        response = create(client, buyer, catalog.one_time.id, headers={"Prefer": prefer})
        assert response.status_code == 400
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["code"] == "invalid_prefer_header"
        assert _checkout_count() == 0

    def test_other_preferences_are_ignored(
        self, client: Any, buyer: Buyer, catalog: Catalog
    ) -> None:
        headers = {"Prefer": "return=minimal, wait=1; foo=bar"}
        response = create(client, buyer, catalog.one_time.id, headers=headers)
        assert response.status_code == 202
        assert response.headers["Preference-Applied"] == "wait=1"

    def test_wait_returns_the_open_checkout(
        self, client: Any, buyer: Buyer, catalog: Catalog, worker: Any
    ) -> None:
        response = create(client, buyer, catalog.one_time.id, wait=10)
        assert response.status_code == 201
        assert response.headers["Preference-Applied"] == "wait=10"
        body = response.get_json()
        assert body["status"] == "open"
        assert body["client_secret"].startswith("pi_")

    def test_without_a_worker_the_wait_ends_pending(
        self, client: Any, buyer: Buyer, catalog: Catalog
    ) -> None:
        response = create(client, buyer, catalog.one_time.id, wait=1)
        assert response.status_code == 202
        assert response.get_json()["status"] == "pending"


class TestRateLimit:
    def test_429_with_retry_after(
        self, app: Flask, client: Any, merchant: Merchant, buyer: Buyer, catalog: Catalog
    ) -> None:
        limit = app.config["BILLINGOS"].checkout_rate_limit
        statuses = []
        # A fixed window may reset once during the burst; two windows' worth plus one request
        # must hit the limit.
        for n in range(2 * limit + 1):
            response = create(
                client, buyer, catalog.one_time.id, headers={"Idempotency-Key": f"burst-{n}"}
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert statuses[-1] == 429
        assert statuses.count(202) >= limit
        assert response.get_json()["code"] == "rate_limited"
        assert (
            1
            <= int(response.headers["Retry-After"])
            <= app.config["BILLINGOS"].checkout_rate_window_seconds
        )

        # Per session token: another buyer is not limited.
        other = make_buyer(merchant, external_id="user_other")
        assert create(client, other, catalog.one_time.id).status_code == 202
