"""Metered features: a Basic plan (1,000 API calls a month, 3 projects), a Business plan
(10,000 calls, unlimited projects), a storage add-on whose grants add up, and buyers of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.db import db
from app.entitlements.service import recompute_entitlements
from models import Product, Subscription
from tests.factories import Buyer, Merchant, make_product
from tests.support.billing import *  # noqa: F403
from tests.support.ownership import make_purchase, make_subscription


@dataclass
class Plans:
    basic: Product
    business: Product
    storage_pack: Product  # one-time, +50 GB of the additive `storage_gb`


def _monthly(amount: int) -> list[dict[str, Any]]:
    return [{"amount": amount, "currency": "usd", "interval": "month"}]


@pytest.fixture()
def plans(merchant: Merchant) -> Plans:
    calls = {"key": "api_calls", "name": "API calls", "type": "usage_quota", "unit": "calls"}
    projects = {"key": "projects", "name": "Projects", "type": "numeric_limit"}
    return Plans(
        basic=make_product(
            merchant,
            name="Basic",
            features=[
                {**calls, "limit": 1000},
                {**projects, "limit": 3},
                {"key": "export", "name": "Export"},
            ],
            prices=_monthly(900),
        ),
        business=make_product(
            merchant,
            name="Business",
            features=[{**calls, "limit": 10_000}, {**projects, "limit": -1}],
            prices=_monthly(9900),
        ),
        storage_pack=make_product(
            merchant,
            name="Storage pack",
            features=[
                {
                    "key": "storage_gb",
                    "name": "Storage",
                    "type": "usage_quota",
                    "limit": 50,
                    "additive": True,
                    "unit": "GB",
                }
            ],
            prices=[{"amount": 500, "currency": "usd"}],
        ),
    )


def subscribe(buyer: Buyer, product: Product, **kwargs: Any) -> Subscription:
    subscription = make_subscription(buyer.customer_id, product.prices[0], **kwargs)
    recompute_entitlements(db.session(), buyer.customer_id)
    db.session.commit()
    return subscription


def buy(buyer: Buyer, product: Product) -> None:
    make_purchase(buyer.customer_id, product.prices[0])
    recompute_entitlements(db.session(), buyer.customer_id)
    db.session.commit()


def track(
    client: FlaskClient, buyer: Buyer, quantity: int = 1, key: str | None = None, **extra: Any
) -> Any:
    body = {"feature_key": "api_calls", "quantity": quantity, **extra}
    if key is not None:
        body["idempotency_key"] = key
    return client.post("/v1/features/track-usage", json=body, headers=buyer.headers)


def check(client: FlaskClient, buyer: Buyer, feature_key: str = "api_calls", **query: Any) -> Any:
    params = "".join(f"&{name}={value}" for name, value in query.items())
    response = client.get(
        f"/v1/features/check?feature_key={feature_key}{params}", headers=buyer.headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def metrics(client: FlaskClient, buyer: Buyer) -> dict[str, Any]:
    response = client.get("/v1/features/usage-metrics", headers=buyer.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {m["feature_key"]: m for m in response.get_json()["metrics"]}
