"""Product creation and validation (the merchant's catalog endpoints)."""

from __future__ import annotations

import pytest

VALID = {
    "name": "Pro",
    "description": "All features",
    "features": [{"key": "pro", "name": "Pro"}, {"key": "export", "name": "Export"}],
    "prices": [
        {"amount": 1200, "currency": "usd", "interval": "month"},
        {"amount": 12000, "currency": "usd", "interval": "year", "trial_period_days": 14},
        {"amount": 2900, "currency": "eur"},
    ],
}


def _with(**changes):
    return {**VALID, **changes}


def _price(**changes):
    return _with(prices=[{"amount": 1200, "currency": "usd", "interval": "month", **changes}])


class TestCreate:
    def test_creates_product_prices_and_features(self, client, merchant):
        response = client.post("/v1/products", json=VALID, headers=merchant.headers)
        assert response.status_code == 201
        product = response.get_json()
        assert product["name"] == "Pro" and product["active"] is True
        assert [f["key"] for f in product["features"]] == ["export", "pro"]
        kinds = [(p["type"], p["interval"], p["trial_period_days"]) for p in product["prices"]]
        assert kinds == [
            ("recurring", "month", None),
            ("recurring", "year", 14),
            ("one_time", None, None),
        ]
        fetched = client.get(f"/v1/products/{product['id']}", headers=merchant.headers)
        assert fetched.get_json() == product

    def test_features_are_shared_by_key_within_an_organization(self, client, merchant):
        client.post("/v1/products", json=VALID, headers=merchant.headers)
        other = _with(name="Team", features=[{"key": "pro", "name": "Pro (renamed)"}])
        response = client.post("/v1/products", json=other, headers=merchant.headers)
        assert [(f["key"], f["name"]) for f in response.get_json()["features"]] == [
            ("pro", "Pro (renamed)")
        ]

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(_price(amount=-1), id="negative amount"),
            pytest.param(_price(amount=10**12), id="absurd amount"),
            pytest.param(_price(amount=12.5), id="fractional amount"),
            pytest.param(_price(amount="1200"), id="amount as string"),
            pytest.param(_price(amount=True), id="amount as bool"),
            pytest.param(_price(currency="usx"), id="unknown currency"),
            pytest.param(_price(currency="dollars"), id="currency not iso"),
            pytest.param(_price(interval="week"), id="bad interval"),
            pytest.param(_price(trial_period_days=0), id="zero trial"),
            pytest.param(
                _with(prices=[{"amount": 100, "currency": "usd", "trial_period_days": 7}]),
                id="trial on one-time",
            ),
            pytest.param(_with(prices=[{"amount": 0, "currency": "usd"}]), id="free one-time"),
            pytest.param(_with(prices=[]), id="no prices"),
            pytest.param(_with(name=""), id="empty name"),
            pytest.param(_with(name="   "), id="blank name"),
            pytest.param(_with(name="x" * 201), id="oversize name"),
            pytest.param(_with(description="x" * 2001), id="oversize description"),
            pytest.param(_with(name=42), id="name wrong type"),
            pytest.param(_with(features=[{"key": "Bad Key", "name": "x"}]), id="bad feature key"),
            pytest.param(
                _with(features=[{"key": "a", "name": "x"}, {"key": "a", "name": "y"}]),
                id="duplicate feature",
            ),
            pytest.param(_with(surprise=True), id="unknown field"),
            pytest.param(_price(surprise=True), id="unknown nested field"),
            pytest.param({k: v for k, v in VALID.items() if k != "name"}, id="missing name"),
        ],
    )
    def test_invalid_bodies_are_422_and_change_nothing(self, client, merchant, body):
        response = client.post("/v1/products", json=body, headers=merchant.headers)
        assert response.status_code == 422, response.get_json()
        problem = response.get_json()
        assert problem["code"] == "validation_error"
        assert problem["errors"] and all(e["loc"][0] == "body" for e in problem["errors"])
        listing = client.get("/v1/products?include_archived=true", headers=merchant.headers)
        assert listing.get_json()["data"] == []

    def test_unknown_field_is_named_in_the_error(self, client, merchant):
        response = client.post("/v1/products", json=_with(surprise=1), headers=merchant.headers)
        assert ["body", "surprise"] in [e["loc"] for e in response.get_json()["errors"]]


class TestListAndArchive:
    def test_archived_products_are_hidden_unless_asked(self, client, merchant, buyer):
        ids = [
            client.post(
                "/v1/products", json=_with(name=f"P{i}"), headers=merchant.headers
            ).get_json()["id"]
            for i in range(3)
        ]
        archived = client.patch(
            f"/v1/products/{ids[0]}", json={"active": False}, headers=merchant.headers
        )
        assert archived.get_json()["active"] is False
        names = [
            p["name"]
            for p in client.get("/v1/products", headers=merchant.headers).get_json()["data"]
        ]
        assert names == ["P2", "P1"]
        everything = client.get("/v1/products?include_archived=true", headers=merchant.headers)
        assert len(everything.get_json()["data"]) == 3
        sdk = client.get("/v1/products", headers=buyer.headers).get_json()["data"]
        assert [p["name"] for p in sdk] == ["P1", "P2"]

    def test_pagination(self, client, merchant):
        for i in range(5):
            client.post("/v1/products", json=_with(name=f"P{i}"), headers=merchant.headers)
        page = client.get("/v1/products?limit=2", headers=merchant.headers).get_json()
        assert [p["name"] for p in page["data"]] == ["P4", "P3"] and page["has_more"] is True
        after = page["data"][-1]["id"]
        page = client.get(
            f"/v1/products?limit=2&starting_after={after}", headers=merchant.headers
        ).get_json()
        assert [p["name"] for p in page["data"]] == ["P2", "P1"] and page["has_more"] is True
        after = page["data"][-1]["id"]
        page = client.get(
            f"/v1/products?limit=2&starting_after={after}", headers=merchant.headers
        ).get_json()
        assert [p["name"] for p in page["data"]] == ["P0"] and page["has_more"] is False

    @pytest.mark.parametrize(
        "query", ["limit=0", "limit=101", "limit=abc", "starting_after=nope", "bogus=1"]
    )
    def test_bad_list_queries_are_422(self, client, merchant, query):
        response = client.get(f"/v1/products?{query}", headers=merchant.headers)
        assert response.status_code == 422
        assert response.get_json()["errors"][0]["loc"][0] == "query"


def test_another_organizations_id_as_cursor_behaves_like_an_unknown_one(client, merchant):
    from tests.factories import make_merchant, make_product

    client.post("/v1/products", json=VALID, headers=merchant.headers)
    foreign = make_product(make_merchant("Other"))
    page = client.get(f"/v1/products?starting_after={foreign.id}", headers=merchant.headers)
    assert page.get_json() == {"data": [], "has_more": False}


def test_timestamps_are_utc_whatever_the_server_time_zone(app_context):
    from sqlalchemy import text

    from app.db import db

    assert db.session.execute(text("SHOW timezone")).scalar() == "UTC"
