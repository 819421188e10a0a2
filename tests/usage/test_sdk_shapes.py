"""What the unchanged SDKs send and read (API version 2026-01-01): useFeature, the usage hooks,
the upgrade nudge, the pricing table's feature properties, and dialect errors."""

from __future__ import annotations

from typing import Any

import pytest

from app.versions import SDK_2026_01_01
from tests.factories import Buyer, Merchant, make_buyer, make_merchant
from tests.usage.conftest import subscribe

ORIGIN = "http://localhost:5173"


@pytest.fixture()
def merchant(app_context: None) -> Merchant:
    return make_merchant(api_version=SDK_2026_01_01, allowed_origins=(ORIGIN,))


@pytest.fixture()
def buyer(merchant: Merchant) -> Buyer:
    return make_buyer(merchant)


def react(buyer: Buyer) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {buyer.token}",
        "X-BillingOS-Version": SDK_2026_01_01,
        "Origin": ORIGIN,
    }


def test_track_then_read_usage_metrics_and_check(client, buyer, plans) -> None:
    subscribe(buyer, plans.basic)
    tracked = client.post(
        "/v1/features/track-usage",
        json={
            "feature_key": "api_calls",
            "quantity": 250,
            "idempotency_key": "sdk-1",
            "metadata": {"endpoint": "/search"},
        },
        headers=react(buyer),
    )
    assert tracked.status_code == 200, tracked.get_data(as_text=True)
    assert tracked.headers["Access-Control-Allow-Origin"] == ORIGIN

    metrics = client.get("/v1/features/usage-metrics", headers=react(buyer)).get_json()
    (metric,) = metrics["metrics"]
    assert {"feature_key", "feature_title", "current_usage", "consumed", "limit"} <= set(metric)
    assert {"period_start", "period_end"} <= set(metric)
    assert (metric["feature_key"], metric["current_usage"], metric["consumed"]) == (
        "api_calls",
        250,
        250,
    )
    assert metric["limit"] == 1000 and metric["feature_title"] == "API calls"

    check: dict[str, Any] = client.get(
        "/v1/features/check?feature_key=api_calls", headers=react(buyer)
    ).get_json()
    assert {k: check[k] for k in ("feature_key", "has_access", "limit", "usage")} == {
        "feature_key": "api_calls",
        "has_access": True,
        "limit": 1000,
        "usage": 250,
    }
    assert isinstance(check["metadata"], dict)


def test_errors_are_in_the_dialect(client, buyer, plans) -> None:
    subscribe(buyer, plans.basic)
    unknown = client.post(
        "/v1/features/track-usage",
        json={"feature_key": "nope", "quantity": 1},
        headers=react(buyer),
    )
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "feature_not_found"
    invalid = client.post(
        "/v1/features/track-usage",
        json={"feature_key": "api_calls", "quantity": 0},
        headers=react(buyer),
    )
    assert invalid.status_code == 400  # what the React SDK maps to a validation error
    assert "message" in invalid.get_json()["error"]


def test_the_pricing_table_shows_types_and_limits(client, buyer, plans) -> None:
    response = client.get("/v1/products", headers=react(buyer))
    assert response.status_code == 200
    basic = {p["name"]: p for p in response.get_json()["products"]}["Basic"]
    features = {f["name"]: f for f in basic["features"]}
    assert features["api_calls"]["type"] == "usage_quota"
    assert features["api_calls"]["properties"] == {"limit": 1000, "period": None, "unit": "calls"}
    assert features["projects"]["type"] == "numeric_limit"
    assert features["projects"]["properties"]["limit"] == 3
    assert features["export"] == {
        **features["export"],
        "type": "boolean_flag",
        "properties": {"limit": None, "period": None, "unit": None},
    }
    business = {p["name"]: p for p in response.get_json()["products"]}["Business"]
    unlimited = {f["name"]: f for f in business["features"]}["projects"]
    assert unlimited["properties"]["limit"] == -1
