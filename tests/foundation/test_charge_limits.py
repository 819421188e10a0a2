"""Prices Stripe could never charge are refused when the merchant creates them: a clear 422."""

from __future__ import annotations

import pytest

from app.currencies import CURRENCIES, MIN_CHARGE, charge_amount_problem, max_charge, min_charge


def _product(price: dict) -> dict:
    return {"name": "Pro", "prices": [price]}


def _create(client, merchant, price: dict):  # type: ignore[no-untyped-def]
    return client.post("/v1/products", json=_product(price), headers=merchant.headers)


class TestTheTable:
    def test_every_minimum_is_for_a_currency_we_accept(self):
        assert set(MIN_CHARGE) <= CURRENCIES

    def test_stripes_documented_limits(self):
        assert (min_charge("usd"), max_charge("usd")) == (50, 99_999_999)
        assert (min_charge("gbp"), min_charge("eur"), min_charge("jpy")) == (30, 50, 50)
        assert charge_amount_problem(50, "usd") is None
        assert charge_amount_problem(99_999_999, "usd") is None
        assert "minimum" in (charge_amount_problem(49, "usd") or "")
        assert "maximum" in (charge_amount_problem(100_000_000, "usd") or "")


class TestPriceCreate:
    @pytest.mark.parametrize(
        ("price", "words"),
        [
            pytest.param({"amount": 49, "currency": "usd"}, "minimum", id="usd 0.49 one-time"),
            pytest.param(
                {"amount": 29, "currency": "gbp", "interval": "month"}, "minimum", id="gbp 0.29"
            ),
            pytest.param({"amount": 49, "currency": "jpy"}, "minimum", id="jpy 49"),
            pytest.param(
                {"amount": 100_000_000, "currency": "usd"}, "maximum", id="usd 1,000,000.00"
            ),
        ],
    )
    def test_an_amount_stripe_cannot_charge_is_a_422_naming_the_limit(
        self, client, merchant, price, words
    ):
        response = _create(client, merchant, price)
        assert response.status_code == 422, response.get_json()
        problem = response.get_json()
        assert problem["code"] == "validation_error"
        [error] = problem["errors"]
        assert error["loc"][:2] == ["body", "prices"]
        assert words in error["msg"] and price["currency"].upper() in error["msg"]

    @pytest.mark.parametrize(
        "price",
        [
            pytest.param({"amount": 50, "currency": "usd"}, id="usd minimum"),
            pytest.param({"amount": 30, "currency": "gbp"}, id="gbp minimum"),
            pytest.param({"amount": 99_999_999, "currency": "eur"}, id="eur maximum"),
            pytest.param({"amount": 0, "currency": "usd", "interval": "month"}, id="free plan"),
        ],
    )
    def test_the_limits_themselves_are_accepted(self, client, merchant, price):
        response = _create(client, merchant, price)
        assert response.status_code == 201, response.get_json()
