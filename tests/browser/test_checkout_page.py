"""Buying through the hosted checkout page in a real browser, as the SDK's modal frames it."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import VISA, Checkout
from tests.support.billing import Catalog


def test_one_time_purchase_posts_the_protocol_sequence_to_the_parent(
    open_in_browser: Any, catalog: Catalog
) -> None:
    checkout: Checkout = open_in_browser(catalog.one_time.id)
    frame = checkout.frame
    assert frame.locator("#product-name").inner_text() == "Lifetime export"
    assert frame.locator("#price").inner_text() == "$29.00"

    checkout.pay(VISA)
    success = checkout.wait_for_message("CHECKOUT_SUCCESS")

    assert checkout.types() == ["CHECKOUT_READY", "PROCESSING", "CHECKOUT_SUCCESS"]
    every = checkout.messages()
    assert every[0] == {"type": "CHECKOUT_READY"}
    assert every[1]["type"] == "HEIGHT_CHANGED" and every[1]["payload"]["height"] > 100
    assert success == {"type": "CHECKOUT_SUCCESS", "payload": {"subscription": None}}
    assert frame.locator("#success-title").is_visible()
