"""Every list pages: `?limit` 1-100 (default 20), `?starting_after`, `{data, has_more}`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import Buyer, Merchant, make_buyer, make_product
from tests.support.ownership import make_subscription


def _pages(client: Any, url: str, headers: dict[str, str], limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        query = f"?limit={limit}" + (f"&starting_after={cursor}" if cursor else "")
        body = client.get(url + query, headers=headers).get_json()
        pages.append([item["id"] for item in body["data"]])
        if not body["has_more"]:
            return pages
        cursor = body["data"][-1]["id"]


def test_the_sdk_product_list_pages_in_pricing_table_order(
    client: Any, merchant: Merchant, buyer: Buyer
) -> None:
    created = [str(make_product(merchant, name=f"Plan {n}").id) for n in range(5)]
    pages = _pages(client, "/v1/products", buyer.headers, limit=2)
    assert pages == [created[0:2], created[2:4], created[4:5]]
    default = client.get("/v1/products", headers=buyer.headers).get_json()
    assert len(default["data"]) == 5 and default["has_more"] is False


def test_a_customers_subscriptions_page_for_the_sdk_and_the_merchant(
    client: Any, merchant: Merchant, buyer: Buyer
) -> None:
    # One live subscription per product: three products.
    prices = [make_product(merchant, name=f"P{n}").prices[0] for n in range(3)]
    created = [str(make_subscription(buyer.customer_id, price).id) for price in prices]
    newest_first = created[::-1]
    sdk = _pages(client, "/v1/customer/subscriptions", buyer.headers, limit=2)
    assert sdk == [newest_first[0:2], newest_first[2:3]]
    merchant_view = f"/v1/customers/{buyer.external_id}/subscriptions"
    assert _pages(client, merchant_view, merchant.headers, limit=2) == sdk
    detail = client.get(f"/v1/customers/{buyer.external_id}", headers=merchant.headers)
    body = detail.get_json()
    assert [s["id"] for s in body["subscriptions"]] == newest_first
    assert body["subscriptions_has_more"] is False


def test_another_customers_subscription_is_no_cursor(
    client: Any, merchant: Merchant, buyer: Buyer
) -> None:
    price = make_product(merchant).prices[0]
    make_subscription(buyer.customer_id, price)
    other = make_buyer(merchant, external_id="user_other")
    foreign = make_subscription(other.customer_id, price)
    url = f"/v1/customer/subscriptions?starting_after={foreign.id}"
    assert client.get(url, headers=buyer.headers).get_json() == {"data": [], "has_more": False}


@pytest.mark.parametrize(
    "path",
    ["/v1/products", "/v1/customer/subscriptions"],
)
@pytest.mark.parametrize("limit", ["0", "101", "lots"])
def test_page_size_is_bounded(client: Any, buyer: Buyer, path: str, limit: str) -> None:
    response = client.get(f"{path}?limit={limit}", headers=buyer.headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
