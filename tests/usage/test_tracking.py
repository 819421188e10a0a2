"""track-usage: exactly once per idempotency key, both credentials, what is refused."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app.db import db
from models import UsageAggregate, UsageEvent
from models.base import utcnow
from tests.usage.conftest import check, metrics, subscribe, track


class TestExactlyOnce:
    def test_a_retry_with_the_same_key_counts_once(self, client, buyer, plans):
        subscribe(buyer, plans.basic)
        first = track(client, buyer, 5, key="req-1")
        assert first.status_code == 200
        assert first.get_json()["consumed"] == 5 and first.get_json()["duplicate"] is False
        retry = track(client, buyer, 5, key="req-1")
        assert retry.status_code == 200
        assert retry.get_json()["consumed"] == 5 and retry.get_json()["duplicate"] is True
        assert track(client, buyer, 2, key="req-2").get_json()["consumed"] == 7
        assert metrics(client, buyer)["api_calls"]["consumed"] == 7
        assert db.session.execute(select(func.count()).select_from(UsageEvent)).scalar() == 2

    def test_a_key_reused_for_other_usage_is_a_conflict(self, client, buyer, plans):
        subscribe(buyer, plans.basic)
        track(client, buyer, 5, key="req-1")
        reused = track(client, buyer, 6, key="req-1")
        assert reused.status_code == 409
        assert reused.get_json()["code"] == "idempotency_key_reused"
        assert metrics(client, buyer)["api_calls"]["consumed"] == 5

    def test_without_a_key_every_call_counts(self, client, buyer, plans):
        subscribe(buyer, plans.basic)
        track(client, buyer, 1)
        assert track(client, buyer, 1).get_json()["consumed"] == 2

    def test_keys_are_per_customer(self, client, merchant, buyer, plans):
        from tests.factories import make_buyer

        other = make_buyer(merchant, external_id="user_2")
        subscribe(buyer, plans.basic)
        subscribe(other, plans.basic)
        track(client, buyer, 3, key="same")
        assert track(client, other, 4, key="same").get_json()["consumed"] == 4


class TestMerchantServerForm:
    def test_the_secret_key_names_the_customer_by_external_id(self, client, merchant, buyer, plans):
        subscribe(buyer, plans.basic)
        response = client.post(
            "/v1/features/track-usage",
            json={
                "feature_key": "api_calls",
                "quantity": 40,
                "idempotency_key": "srv-1",
                "customer_external_id": buyer.external_id,
            },
            headers=merchant.headers,
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        assert check(client, buyer)["usage"] == 40

    def test_the_secret_key_must_name_a_known_customer(self, client, merchant, plans):
        body = {"feature_key": "api_calls", "quantity": 1}
        missing = client.post("/v1/features/track-usage", json=body, headers=merchant.headers)
        assert missing.status_code == 422 and missing.get_json()["code"] == "customer_required"
        unknown = client.post(
            "/v1/features/track-usage",
            json={**body, "customer_external_id": "nobody"},
            headers=merchant.headers,
        )
        assert unknown.status_code == 404 and unknown.get_json()["code"] == "customer_not_found"

    def test_a_session_token_cannot_name_another_customer(self, client, buyer, plans):
        subscribe(buyer, plans.basic)
        response = track(client, buyer, 1, customer_external_id="user_2")
        assert response.status_code == 422


class TestRefused:
    def test_unknown_and_unmetered_features(self, client, buyer, plans):
        subscribe(buyer, plans.basic)
        unknown = track(client, buyer, 1, feature_key="nope")
        assert unknown.status_code == 404 and unknown.get_json()["code"] == "feature_not_found"
        for key in ("export", "projects"):
            refused = track(client, buyer, 1, feature_key=key)
            assert refused.status_code == 422
            assert refused.get_json()["code"] == "feature_not_metered"

    def test_a_timestamp_outside_the_current_period_is_refused(self, client, buyer, plans):
        subscription = subscribe(buyer, plans.basic)
        before = (subscription.current_period_start - timedelta(seconds=1)).isoformat()
        future = (utcnow() + timedelta(hours=1)).isoformat()
        for timestamp in (before, future):
            refused = track(client, buyer, 1, timestamp=timestamp)
            assert refused.status_code == 422
            assert refused.get_json()["code"] == "timestamp_outside_period", refused.get_json()
        inside = (subscription.current_period_start + timedelta(microseconds=1)).isoformat()
        assert track(client, buyer, 1, timestamp=inside).status_code == 200
        assert check(client, buyer)["usage"] == 1

    def test_quantity_must_be_positive(self, client, buyer, plans):
        subscribe(buyer, plans.basic)
        assert track(client, buyer, 0).status_code == 422
        assert track(client, buyer, -3).status_code == 422


class TestNotGranted:
    def test_usage_without_a_grant_is_recorded_over_the_calendar_month(self, client, buyer, plans):
        response = track(client, buyer, 2, key="free-1")
        assert response.status_code == 200
        body = response.get_json()
        now = utcnow()
        assert body["period_start"].startswith(f"{now.year:04d}-{now.month:02d}-01T00:00:00")
        assert body["limit"] == 0
        assert check(client, buyer)["has_access"] is False
        aggregate = db.session.execute(select(UsageAggregate)).scalar_one()
        assert aggregate.consumed == 2
