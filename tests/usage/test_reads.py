"""check / entitlements / usage-metrics: limits, over quota, combining grants, coherence."""

from __future__ import annotations

from app.db import db
from app.entitlements.service import recompute_entitlements
from tests.usage.conftest import buy, check, metrics, subscribe, track


class TestQuota:
    def test_a_used_up_quota_checks_false(self, client, buyer, plans):
        subscribe(buyer, plans.basic)
        assert track(client, buyer, 999).get_json()["remaining"] == 1
        assert check(client, buyer)["has_access"] is True
        track(client, buyer, 1)
        used_up = check(client, buyer)
        assert used_up["has_access"] is False
        assert (used_up["limit"], used_up["usage"]) == (1000, 1000)
        assert used_up["metadata"]["remaining"] == 0

    def test_usage_metrics_shape(self, client, buyer, plans):
        subscription = subscribe(buyer, plans.basic)
        track(client, buyer, 30)
        metric = metrics(client, buyer)["api_calls"]
        assert metric["current_usage"] == metric["consumed"] == 30
        assert metric["limit"] == 1000 and metric["feature_title"] == "API calls"
        assert metric["unit"] == "calls"
        assert metric["period_start"].startswith(subscription.current_period_start.isoformat()[:19])
        assert metric["period_end"].startswith(subscription.current_period_end.isoformat()[:19])
        only = client.get(
            "/v1/features/usage-metrics?feature_key=export", headers=buyer.headers
        ).get_json()
        assert only == {"metrics": []}


class TestNumericLimit:
    def test_the_app_reports_its_count_and_the_limit_is_reached_at_the_limit(
        self, client, buyer, plans
    ):
        subscribe(buyer, plans.basic)
        assert check(client, buyer, "projects", usage=2)["has_access"] is True
        reached = check(client, buyer, "projects", usage=3)
        assert (reached["has_access"], reached["limit"], reached["usage"]) == (False, 3, 3)
        granted = check(client, buyer, "projects")
        assert (granted["has_access"], granted["usage"]) == (True, None)

    def test_unlimited_is_minus_one(self, client, buyer, plans):
        subscribe(buyer, plans.business)
        unlimited = check(client, buyer, "projects", usage=10**6)
        assert (unlimited["has_access"], unlimited["limit"]) == (True, -1)


class TestCombiningGrants:
    def test_two_plans_give_the_largest_limit_not_the_sum(self, client, buyer, plans):
        subscribe(buyer, plans.basic)
        subscribe(buyer, plans.business)
        assert check(client, buyer)["limit"] == 10_000
        assert check(client, buyer, "projects")["limit"] == -1

    def test_an_additive_feature_sums_its_grants(self, client, buyer, plans):
        buy(buyer, plans.storage_pack)
        assert check(client, buyer, "storage_gb")["limit"] == 50
        buy(buyer, plans.storage_pack)
        assert check(client, buyer, "storage_gb")["limit"] == 100

    def test_entitlements_list_carries_limits_and_usage(self, client, buyer, plans):
        subscribe(buyer, plans.basic)
        track(client, buyer, 7)
        listed = client.get("/v1/features/entitlements", headers=buyer.headers).get_json()
        by_key = {e["feature_key"]: e for e in listed["entitlements"]}
        assert by_key["api_calls"]["usage"] == 7 and by_key["api_calls"]["limit"] == 1000
        assert by_key["export"]["limit"] is None and by_key["export"]["has_access"] is True


class TestCoherence:
    def test_a_downgrade_lowers_the_limit_at_once(self, client, buyer, plans):
        subscribe(buyer, plans.basic)
        business = subscribe(buyer, plans.business)
        track(client, buyer, 5000)
        assert check(client, buyer)["has_access"] is True  # cached now, with limit 10,000
        business.status = "canceled"
        recompute_entitlements(db.session(), buyer.customer_id)
        db.session.commit()
        after = check(client, buyer)
        assert (after["limit"], after["has_access"]) == (1000, False)
        assert metrics(client, buyer)["api_calls"]["limit"] == 1000
        assert track(client, buyer, 1).get_json()["limit"] == 1000

    def test_a_revocation_removes_the_quota_at_once(self, client, buyer, plans):
        basic = subscribe(buyer, plans.basic)
        assert check(client, buyer)["has_access"] is True
        basic.status = "canceled"
        recompute_entitlements(db.session(), buyer.customer_id)
        db.session.commit()
        assert check(client, buyer) == {
            "feature_key": "api_calls",
            "has_access": False,
            "limit": None,
            "usage": None,
            "metadata": {},
        }
        assert metrics(client, buyer) == {}

    def test_the_merchant_lowering_a_limit_is_seen_at_once(self, client, merchant, buyer, plans):
        subscribe(buyer, plans.basic)
        assert check(client, buyer)["limit"] == 1000
        response = client.put(
            f"/v1/products/{plans.basic.id}/features/api_calls",
            json={"limit": 10},
            headers=merchant.headers,
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        granted = {f["key"]: f for f in response.get_json()["features"]}["api_calls"]
        assert (granted["type"], granted["limit"]) == ("usage_quota", 10)
        assert check(client, buyer)["limit"] == 10

    def test_granting_a_new_feature_reaches_current_subscribers(
        self, client, merchant, buyer, plans
    ):
        subscribe(buyer, plans.business)
        assert check(client, buyer, "export")["has_access"] is False
        client.put(
            f"/v1/products/{plans.business.id}/features/export",
            json={"limit": None},
            headers=merchant.headers,
        )
        assert check(client, buyer, "export")["has_access"] is True


class TestDefinitions:
    def test_the_merchant_defines_and_lists_features(self, client, merchant, buyer, plans):
        subscribe(buyer, plans.basic)
        changed = client.patch(
            "/v1/features/api_calls", json={"unit": "requests"}, headers=merchant.headers
        )
        assert changed.status_code == 200
        assert changed.get_json()["unit"] == "requests"
        listed = client.get("/v1/features", headers=merchant.headers).get_json()["data"]
        assert {f["key"]: f["type"] for f in listed} == {
            "api_calls": "usage_quota",
            "export": "boolean_flag",
            "projects": "numeric_limit",
            "storage_gb": "usage_quota",
        }
        assert check(client, buyer)["metadata"]["unit"] == "requests"
        missing = client.patch("/v1/features/nope", json={"unit": "x"}, headers=merchant.headers)
        assert missing.status_code == 404

    def test_a_limited_feature_needs_a_limit(self, client, merchant):
        response = client.post(
            "/v1/products",
            json={
                "name": "Broken",
                "features": [{"key": "calls", "name": "Calls", "type": "usage_quota"}],
                "prices": [{"amount": 100, "currency": "usd", "interval": "month"}],
            },
            headers=merchant.headers,
        )
        assert response.status_code == 422
