"""Direct subscriptions: our row first, a key from its id, no orphan, no race with a checkout."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update

from app.db import db
from models import CheckoutSession, ProductPrice, Subscription
from models.base import utcnow

CREATE = "/v1/customer/subscription/create"


def _create(client, buyer, price_id):
    return client.post(CREATE, json={"price_id": str(price_id)}, headers=buyer.headers)


def _subscription_creates(stripe_emulator) -> list[dict]:
    return stripe_emulator.requests(path="/v1/subscriptions", method="POST")


def _rows(customer_id) -> list[Subscription]:
    db.session.remove()
    return list(
        db.session.execute(
            select(Subscription)
            .where(Subscription.customer_id == customer_id)
            .order_by(Subscription.created_at)
        ).scalars()
    )


class TestIdempotencyKey:
    def test_a_retry_after_a_stripe_outage_reuses_the_row_and_its_key(
        self, client, buyer, catalog, stripe_emulator
    ):
        # Set up the Stripe customer and price first, so only the subscription call fails.
        stripe_emulator.set_faults("error_500", paths=["/v1/subscriptions"])
        failed = _create(client, buyer, catalog.free_monthly.id)
        assert failed.status_code in (502, 503), failed.get_json()
        [pending] = _rows(buyer.customer_id)
        assert (pending.status, pending.stripe_subscription_id) == ("incomplete", None)

        stripe_emulator.clear_faults()
        retried = _create(client, buyer, catalog.free_monthly.id)
        assert retried.status_code == 201, retried.get_json()
        assert retried.get_json()["id"] == str(pending.id)
        keys = {r["idempotency_key"] for r in _subscription_creates(stripe_emulator)}
        assert keys == {f"subscription:{pending.id}:create"}
        assert len(stripe_emulator.client().v1.subscriptions.list().data) == 1

    def test_a_refused_create_leaves_no_orphan_blocking_the_customer(
        self, client, buyer, catalog, stripe_emulator
    ):
        # A Stripe price Stripe does not know: an invalid request, Stripe makes nothing.
        price = db.session.get(ProductPrice, catalog.free_monthly.id)
        price.stripe_price_id = "price_does_not_exist"
        db.session.commit()
        refused = _create(client, buyer, catalog.free_monthly.id)
        assert refused.status_code == 502, refused.get_json()
        [abandoned] = _rows(buyer.customer_id)
        assert abandoned.status == "incomplete_expired"

        price = db.session.get(ProductPrice, catalog.free_monthly.id)
        price.stripe_price_id = None  # mirrored again on the next attempt
        db.session.commit()
        created = _create(client, buyer, catalog.free_monthly.id)
        assert created.status_code == 201, created.get_json()
        assert created.get_json()["id"] != str(abandoned.id)
        assert created.get_json()["status"] == "active"

    def test_keys_of_two_prices_never_collide(self, client, merchant, buyer, stripe_emulator):
        from tests.factories import make_product

        plan = make_product(
            merchant,
            name="Starter",
            features=[{"key": "starter", "name": "Starter"}],
            prices=[
                {"amount": 0, "currency": "usd", "interval": "month"},
                {"amount": 0, "currency": "usd", "interval": "year"},
            ],
        )
        first = _create(client, buyer, plan.prices[0].id).get_json()
        canceled = client.post(
            f"/v1/customer/subscriptions/{first['id']}/cancel",
            json={"at_period_end": False},
            headers=buyer.headers,
        )
        assert canceled.status_code == 200
        # The old key `customer:{c}:product:{p}:subscribe:{n}` would not have shifted here in
        # every case; ours is the new row's own id.
        second = _create(client, buyer, plan.prices[1].id)
        assert second.status_code == 201, second.get_json()
        keys = [r["idempotency_key"] for r in _subscription_creates(stripe_emulator)]
        assert keys == [
            f"subscription:{first['id']}:create",
            f"subscription:{second.get_json()['id']}:create",
        ]


class TestCheckoutInProgress:
    def _checkout(self, buyer, price, status):
        checkout = CheckoutSession(
            organization_id=buyer.organization_id,
            customer_id=buyer.customer_id,
            product_id=price.product_id,
            price_id=price.id,
            idempotency_key=f"test:{uuid.uuid4()}",
            status=status,
            amount=price.amount,
            currency=price.currency,
            expires_at=utcnow() + timedelta(hours=1),
        )
        db.session.add(checkout)
        db.session.commit()

    def test_a_trial_is_refused_while_a_checkout_of_the_product_is_unfinished(
        self, client, buyer, catalog, stripe_emulator
    ):
        for status in ("pending", "open", "processing", "requires_action"):
            self._checkout(buyer, catalog.trial, status)
            response = _create(client, buyer, catalog.trial.id)
            assert response.status_code == 409, (status, response.get_json())
            assert response.get_json()["code"] == "already_subscribed"
            db.session.execute(update(CheckoutSession).values(status="canceled"))
            db.session.commit()
        assert _subscription_creates(stripe_emulator) == []
        assert _rows(buyer.customer_id) == []

    def test_a_finished_checkout_does_not_block(self, client, buyer, catalog, stripe_emulator):
        self._checkout(buyer, catalog.trial, "failed")
        self._checkout(buyer, catalog.trial, "expired")
        assert _create(client, buyer, catalog.trial.id).status_code == 201


class TestRateLimit:
    def test_429_with_retry_after_per_customer(self, client, merchant, buyer, catalog):
        from app.rate_limit import SUBSCRIBE_PER_CUSTOMER, rule
        from tests.factories import make_buyer

        limit = rule(SUBSCRIBE_PER_CUSTOMER)
        statuses = []
        # A paid price: refused (402) before Stripe, yet counted. A window may reset once.
        for _ in range(2 * limit.amount + 1):
            response = _create(client, buyer, catalog.monthly.id)
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert statuses[-1] == 429
        assert response.get_json()["code"] == "rate_limited"
        assert 1 <= int(response.headers["Retry-After"]) <= limit.get_expiry()
        other = make_buyer(merchant, external_id="user_other")
        assert _create(client, other, catalog.monthly.id).status_code == 402
