"""Card testing and runaway clients: checkout create and confirm are limited per checkout, per
session token and per customer, each 429 a problem with `Retry-After`."""

from __future__ import annotations

from typing import Any

from flask import Flask

from tests.checkout.conftest import Catalog, confirm, create, open_checkout, settle
from tests.factories import Buyer, Merchant, make_buyer
from tests.support.limits import configured_limits


def _assert_limited(response: Any, window_seconds: int) -> None:
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= window_seconds


def test_a_declined_checkout_can_be_retried_a_few_times_not_hundreds(
    app: Flask, client: Any, buyer: Buyer, catalog: Catalog, worker: Any
) -> None:
    with configured_limits(app, confirm_per_checkout="2/hour"):
        checkout = open_checkout(client, buyer, catalog.one_time.id)
        for _ in range(2):
            declined = "pm_card_visa_chargeDeclined"
            assert confirm(client, buyer, checkout["client_secret"], declined).status_code == 202
            assert settle(client, buyer, checkout["id"])["status"] == "failed"
        third = confirm(client, buyer, checkout["client_secret"], "pm_card_visa")
        _assert_limited(third, 3600)
        # The customer's other checkouts are counted apart.
        other = open_checkout(client, buyer, catalog.monthly.id)
        assert confirm(client, buyer, other["client_secret"], "pm_card_visa").status_code == 202


def test_confirms_are_counted_per_customer_across_checkouts(
    app: Flask, client: Any, merchant: Merchant, buyer: Buyer
) -> None:
    # Unknown secrets still count: guessing secrets is the same abuse.
    with configured_limits(app, confirm_per_customer="3/hour"):
        for n in range(3):
            assert confirm(client, buyer, f"cs_guess_{n}", "pm_card_visa").status_code == 404
        _assert_limited(confirm(client, buyer, "cs_guess_x", "pm_card_visa"), 3600)
        other = make_buyer(merchant, external_id="user_other")
        assert confirm(client, other, "cs_guess_y", "pm_card_visa").status_code == 404


def test_checkout_create_is_limited_per_customer_whatever_the_token(
    app: Flask, client: Any, merchant: Merchant, buyer: Buyer, catalog: Catalog
) -> None:
    # A fresh session token for the same customer does not reset the count.
    second_token = make_buyer(merchant, external_id=buyer.external_id)
    with configured_limits(app, checkout_create_per_customer="2/hour"):
        headers = {"Idempotency-Key": "a"}
        assert create(client, buyer, catalog.one_time.id, headers=headers).status_code == 202
        headers = {"Idempotency-Key": "b"}
        assert create(client, buyer, catalog.one_time.id, headers=headers).status_code == 202
        limited = create(client, second_token, catalog.one_time.id)
        _assert_limited(limited, 3600)
        other = make_buyer(merchant, external_id="user_other")
        assert create(client, other, catalog.one_time.id).status_code == 202
