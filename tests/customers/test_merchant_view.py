"""GET /v1/customers/{external_id}: the merchant's view of one of its users."""

from __future__ import annotations

from tests.factories import make_buyer, make_merchant


class TestMerchantView:
    def test_customer_with_subscriptions_and_entitlements(
        self, client, merchant, buyer, catalog, stripe_emulator
    ):
        created = client.post(
            "/v1/customer/subscription/create",
            json={"price_id": str(catalog.free_monthly.id)},
            headers=buyer.headers,
        ).get_json()
        response = client.get(f"/v1/customers/{buyer.external_id}", headers=merchant.headers)
        assert response.status_code == 200
        body = response.get_json()
        assert body["id"] == str(buyer.customer_id)
        assert body["external_id"] == "user_1"
        assert body["email"] == "buyer@example.com"
        assert body["subscriptions"] == [created]
        assert body["entitlements"] == [
            {
                "feature_key": "basic",
                "product_id": str(catalog.free.id),
                "source": "subscription",
                "expires_at": created["current_period_end"],
            }
        ]

    def test_a_customer_with_nothing(self, client, merchant, buyer):
        body = client.get("/v1/customers/user_1", headers=merchant.headers).get_json()
        assert (body["subscriptions"], body["entitlements"]) == ([], [])

    def test_another_organizations_customer_is_not_found(self, client, merchant, buyer):
        other = make_merchant("Other")
        make_buyer(other, external_id="user_9")
        for external_id in ("user_9", "nobody"):
            response = client.get(f"/v1/customers/{external_id}", headers=merchant.headers)
            assert response.status_code == 404
            assert response.get_json()["code"] == "customer_not_found"

    def test_a_session_token_cannot_use_it(self, client, buyer):
        response = client.get("/v1/customers/user_1", headers=buyer.headers)
        assert response.status_code == 403
