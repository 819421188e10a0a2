"""POST /v1/customer/subscription/create: free plans and card-less trials, without a checkout."""

from __future__ import annotations

import uuid

from app.db import db
from models import Customer
from tests.factories import make_buyer, make_merchant, make_product
from tests.support.billing import entitlement_keys

CREATE = "/v1/customer/subscription/create"


def _create(client, buyer, price_id):
    return client.post(CREATE, json={"price_id": str(price_id)}, headers=buyer.headers)


def _subscription_creates(stripe_emulator) -> list[dict]:
    return stripe_emulator.requests(path="/v1/subscriptions", method="POST")


class TestFreePlan:
    def test_free_plan_is_active_at_once_and_grants_its_features(
        self, client, buyer, catalog, stripe_emulator
    ):
        response = _create(client, buyer, catalog.free_monthly.id)
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert body["status"] == "active"
        assert body["price_id"] == str(catalog.free_monthly.id)
        assert body["product_id"] == str(catalog.free.id)
        assert body["current_period_end"] is not None
        assert body["cancel_at_period_end"] is False
        assert entitlement_keys(client, buyer) == [("basic", "subscription")]

        # It exists in Stripe, made for this customer, with our metadata and a key derived
        # from our own row's id.
        [request] = _subscription_creates(stripe_emulator)
        assert request["idempotency_key"] == f"subscription:{body['id']}:create"
        stripe_subscription = stripe_emulator.client().v1.subscriptions.retrieve(
            _only_subscription_id(stripe_emulator)
        )
        assert stripe_subscription.status == "active"
        assert stripe_subscription.metadata["billingos_customer_id"] == str(buyer.customer_id)
        assert stripe_subscription.metadata["billingos_subscription_id"] == body["id"]
        customer = db.session.get(Customer, buyer.customer_id)
        assert stripe_subscription.customer == customer.stripe_customer_id

    def test_listed_in_the_customers_subscriptions(self, client, buyer, catalog, stripe_emulator):
        created = _create(client, buyer, catalog.free_monthly.id).get_json()
        listed = client.get("/v1/customer/subscriptions", headers=buyer.headers).get_json()
        assert listed == {"data": [created], "has_more": False}


def _only_subscription_id(stripe_emulator) -> str:
    [subscription] = stripe_emulator.client().v1.subscriptions.list().data
    return subscription.id


class TestTrial:
    def test_trial_needs_no_card_and_is_canceled_by_stripe_if_none_is_added(
        self, client, buyer, catalog, stripe_emulator
    ):
        response = _create(client, buyer, catalog.trial.id)
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert body["status"] == "trialing"
        assert body["trial_end"] is not None
        assert entitlement_keys(client, buyer) == [("team", "subscription")]
        [request] = _subscription_creates(stripe_emulator)
        assert request["params"]["trial_period_days"] in (14, "14")
        assert request["params"]["trial_settings"] == {
            "end_behavior": {"missing_payment_method": "cancel"}
        }

    def test_a_second_trial_of_the_same_product_needs_a_checkout(
        self, client, buyer, catalog, stripe_emulator
    ):
        first = _create(client, buyer, catalog.trial.id).get_json()
        canceled = client.post(
            f"/v1/customer/subscriptions/{first['id']}/cancel",
            json={"at_period_end": False},
            headers=buyer.headers,
        )
        assert canceled.get_json()["status"] == "canceled"
        again = _create(client, buyer, catalog.trial.id)
        assert again.status_code == 402
        assert again.get_json()["code"] == "payment_required"


class TestRefusals:
    def test_paid_price_without_trial_is_payment_required(
        self, client, buyer, catalog, stripe_emulator
    ):
        response = _create(client, buyer, catalog.monthly.id)
        assert response.status_code == 402
        body = response.get_json()
        assert body["code"] == "payment_required"
        assert "/v1/checkout/create" in body["detail"]
        assert response.mimetype == "application/problem+json"
        assert _subscription_creates(stripe_emulator) == []
        assert entitlement_keys(client, buyer) == []

    def test_one_time_price_is_payment_required(self, client, buyer, catalog, stripe_emulator):
        response = _create(client, buyer, catalog.one_time.id)
        assert response.status_code == 402
        assert response.get_json()["code"] == "payment_required"

    def test_unknown_price_is_not_found(self, client, buyer, catalog, stripe_emulator):
        for price_id in (uuid.uuid4(), "not-a-uuid"):
            response = _create(client, buyer, price_id)
            assert response.status_code == 404
            assert response.get_json()["code"] == "price_not_found"

    def test_another_organizations_price_is_not_found(
        self, client, buyer, catalog, stripe_emulator
    ):
        other = make_merchant("Other")
        foreign = make_product(
            other, prices=[{"amount": 0, "currency": "usd", "interval": "month"}]
        )
        response = _create(client, buyer, foreign.prices[0].id)
        assert response.status_code == 404
        assert response.get_json()["code"] == "price_not_found"

    def test_unknown_fields_are_rejected(self, client, buyer, catalog, stripe_emulator):
        response = client.post(
            CREATE,
            json={"price_id": str(catalog.free_monthly.id), "coupon": "FREE"},
            headers=buyer.headers,
        )
        assert response.status_code == 422

    def test_secret_key_is_the_wrong_credential(self, client, merchant, catalog, stripe_emulator):
        response = client.post(
            CREATE, json={"price_id": str(catalog.free_monthly.id)}, headers=merchant.headers
        )
        assert response.status_code == 403


class TestOneLiveSubscriptionPerProduct:
    def test_subscribing_twice_is_already_subscribed(self, client, buyer, catalog, stripe_emulator):
        assert _create(client, buyer, catalog.free_monthly.id).status_code == 201
        again = _create(client, buyer, catalog.free_monthly.id)
        assert again.status_code == 409
        assert again.get_json()["code"] == "already_subscribed"
        assert len(_subscription_creates(stripe_emulator)) == 1

    def test_upgrade_to_another_price_of_the_product_is_refused_with_directions(
        self, client, merchant, buyer, stripe_emulator
    ):
        # Documented choice: plan changes go through the billing portal (Stripe prorates).
        plan = make_product(
            merchant,
            name="Starter",
            features=[{"key": "starter", "name": "Starter"}],
            prices=[
                {"amount": 0, "currency": "usd", "interval": "month"},
                {"amount": 9900, "currency": "usd", "interval": "year", "trial_period_days": 7},
            ],
        )
        assert _create(client, buyer, plan.prices[0].id).status_code == 201
        upgrade = _create(client, buyer, plan.prices[1].id)
        assert upgrade.status_code == 409
        body = upgrade.get_json()
        assert body["code"] == "already_subscribed"
        assert "/v1/portal-session" in body["detail"]
        assert len(_subscription_creates(stripe_emulator)) == 1

    def test_another_customer_may_subscribe_to_the_same_product(
        self, client, merchant, buyer, catalog, stripe_emulator
    ):
        other = make_buyer(merchant, external_id="user_2")
        assert _create(client, buyer, catalog.free_monthly.id).status_code == 201
        assert _create(client, other, catalog.free_monthly.id).status_code == 201

    def test_upgrade_choice_is_documented_in_openapi(self, client):
        spec = client.get("/openapi.json").get_json()
        operation = spec["paths"]["/v1/customer/subscription/create"]["post"]
        assert "already_subscribed" in operation["description"]
        assert "portal" in operation["description"]
