"""POST /v1/customer/subscriptions/{id}/cancel: through Stripe, at period end or now."""

from __future__ import annotations

import uuid

from tests.factories import make_buyer
from tests.support.billing import entitlement_keys

DAY = 86400


def _create(client, buyer, price):
    response = client.post(
        "/v1/customer/subscription/create", json={"price_id": str(price.id)}, headers=buyer.headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _cancel(client, buyer, subscription_id, **body):
    return client.post(
        f"/v1/customer/subscriptions/{subscription_id}/cancel", json=body, headers=buyer.headers
    )


class TestCancelAtPeriodEnd:
    def test_keeps_access_until_stripe_ends_it_at_period_end(
        self, client, buyer, catalog, stripe_emulator, relay
    ):
        subscription = _create(client, buyer, catalog.free_monthly)
        relay.skip()
        response = _cancel(client, buyer, subscription["id"])  # at_period_end defaults to true
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["status"] == "active"
        assert body["cancel_at_period_end"] is True
        assert body["current_period_end"] == subscription["current_period_end"]
        [update] = stripe_emulator.requests(path=f"/v1/subscriptions/{_stripe_id(stripe_emulator)}")
        assert update["params"] == {"cancel_at_period_end": "true"} or update["params"] == {
            "cancel_at_period_end": True
        }
        relay.deliver()
        assert entitlement_keys(client, buyer) == [("basic", "subscription")]

        # The period ends: Stripe sends customer.subscription.deleted, and access goes.
        stripe_emulator.advance_clock(32 * DAY)
        assert "customer.subscription.deleted" in relay.deliver()
        assert entitlement_keys(client, buyer) == []
        [listed] = client.get("/v1/customer/subscriptions", headers=buyer.headers).get_json()[
            "data"
        ]
        assert listed["status"] == "canceled"

    def test_repeating_it_is_harmless(self, client, buyer, catalog, stripe_emulator):
        subscription = _create(client, buyer, catalog.free_monthly)
        first = _cancel(client, buyer, subscription["id"], at_period_end=True)
        second = _cancel(client, buyer, subscription["id"], at_period_end=True)
        assert second.status_code == 200
        assert second.get_json() == first.get_json()


class TestCancelNow:
    def test_ends_at_once_and_revokes(self, client, buyer, catalog, stripe_emulator, relay):
        subscription = _create(client, buyer, catalog.free_monthly)
        assert entitlement_keys(client, buyer) == [("basic", "subscription")]  # cached now
        response = _cancel(client, buyer, subscription["id"], at_period_end=False)
        assert response.status_code == 200
        assert response.get_json()["status"] == "canceled"
        assert entitlement_keys(client, buyer) == []
        # The webhooks that follow (subscription.deleted) change nothing further.
        relay.deliver()
        assert entitlement_keys(client, buyer) == []

    def test_a_canceled_subscription_cannot_be_canceled_again(
        self, client, buyer, catalog, stripe_emulator
    ):
        subscription = _create(client, buyer, catalog.free_monthly)
        _cancel(client, buyer, subscription["id"], at_period_end=False)
        again = _cancel(client, buyer, subscription["id"], at_period_end=False)
        assert again.status_code == 409
        assert again.get_json()["code"] == "subscription_not_cancelable"

    def test_resubscribing_after_cancel_makes_a_new_subscription(
        self, client, buyer, catalog, stripe_emulator
    ):
        first = _create(client, buyer, catalog.free_monthly)
        _cancel(client, buyer, first["id"], at_period_end=False)
        second = _create(client, buyer, catalog.free_monthly)
        assert second["id"] != first["id"]
        assert second["status"] == "active"
        assert entitlement_keys(client, buyer) == [("basic", "subscription")]


class TestIsolation:
    def test_another_customers_subscription_is_not_found(
        self, client, merchant, buyer, catalog, stripe_emulator
    ):
        subscription = _create(client, buyer, catalog.free_monthly)
        other = make_buyer(merchant, external_id="user_2")
        response = _cancel(client, other, subscription["id"], at_period_end=False)
        assert response.status_code == 404
        assert response.get_json()["code"] == "subscription_not_found"
        assert client.get("/v1/customer/subscriptions", headers=other.headers).get_json() == {
            "data": [],
            "has_more": False,
        }
        assert entitlement_keys(client, other) == []
        # Nothing happened to the owner's subscription.
        assert entitlement_keys(client, buyer) == [("basic", "subscription")]

    def test_unknown_subscription_is_not_found(self, client, buyer, stripe_emulator):
        response = _cancel(client, buyer, uuid.uuid4())
        assert response.status_code == 404


def _stripe_id(stripe_emulator) -> str:
    [subscription] = stripe_emulator.client().v1.subscriptions.list().data
    return subscription.id
