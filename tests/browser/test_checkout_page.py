"""Buying through the hosted checkout page in a real browser, as the SDK's modal frames it.

Each scenario asserts the exact sequence of protocol messages the merchant's page received
(HEIGHT_CHANGED, whose count depends on layout, is checked on its own)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.db import db
from models import CheckoutSession
from models.base import utcnow
from tests.browser.conftest import DECLINED, THREE_D_SECURE, VISA, Checkout
from tests.support.billing import Catalog

# A failed attempt, then another card that pays.
DECLINED_THEN_PAID = [
    "CHECKOUT_READY",
    "PROCESSING",
    "PAYMENT_FAILED",
    "PROCESSING",
    "CHECKOUT_SUCCESS",
]


def test_one_time_purchase(open_in_browser: Any, catalog: Catalog) -> None:
    checkout: Checkout = open_in_browser(catalog.one_time.id)
    frame = checkout.frame
    assert frame.locator("#product-name").inner_text() == catalog.lifetime.name
    assert frame.locator("#price").inner_text() == "$29.00"
    assert frame.locator("#submit").inner_text() == "Pay $29.00"

    checkout.pay(VISA)
    success = checkout.wait_for_message("CHECKOUT_SUCCESS")

    assert checkout.types() == ["CHECKOUT_READY", "PROCESSING", "CHECKOUT_SUCCESS"]
    every = checkout.messages()
    assert every[0] == {"type": "CHECKOUT_READY"}
    assert every[1]["type"] == "HEIGHT_CHANGED" and every[1]["payload"]["height"] > 100
    # A one-time purchase makes no subscription.
    assert success == {"type": "CHECKOUT_SUCCESS", "payload": {"subscription": None}}
    assert frame.locator("#success-title").is_visible()


def test_monthly_plan_succeeds_with_the_subscription_in_the_sdk_shape(
    open_in_browser: Any, catalog: Catalog, buyer: Any
) -> None:
    checkout: Checkout = open_in_browser(catalog.monthly.id)
    assert checkout.frame.locator("#price").inner_text() == "$12.00 / month"

    checkout.pay(VISA)
    subscription = checkout.wait_for_message("CHECKOUT_SUCCESS")["payload"]["subscription"]

    assert checkout.types() == ["CHECKOUT_READY", "PROCESSING", "CHECKOUT_SUCCESS"]
    assert subscription["status"] == "active"
    assert subscription["customerId"] == str(buyer.customer_id)
    assert subscription["productId"] == str(catalog.pro.id)
    assert subscription["priceId"] == str(catalog.monthly.id)
    assert subscription["cancelAtPeriodEnd"] is False
    assert subscription["currentPeriodStart"] < subscription["currentPeriodEnd"]


def test_trial_starts_without_a_charge(open_in_browser: Any, catalog: Catalog) -> None:
    checkout: Checkout = open_in_browser(catalog.trial.id)
    frame = checkout.frame
    assert frame.locator("#submit").inner_text() == "Start free trial"
    assert "14-day free trial" in frame.locator("#trial").inner_text()

    checkout.pay(VISA)
    subscription = checkout.wait_for_message("CHECKOUT_SUCCESS")["payload"]["subscription"]

    assert checkout.types() == ["CHECKOUT_READY", "PROCESSING", "CHECKOUT_SUCCESS"]
    assert subscription["status"] == "trialing"
    assert frame.locator("#success-text").inner_text() == "Your free trial has started."


def test_a_decline_is_shown_inline_and_another_card_then_succeeds(
    open_in_browser: Any, catalog: Catalog
) -> None:
    checkout: Checkout = open_in_browser(catalog.one_time.id)
    frame = checkout.frame

    checkout.pay(DECLINED)
    failed = checkout.wait_for_message("PAYMENT_FAILED")

    assert failed["payload"]["code"] == "card_declined"
    assert failed["payload"]["declineCode"] == "generic_decline"
    assert failed["payload"]["type"] == "card_error"
    alert = frame.get_by_role("alert")
    assert "declined" in alert.inner_text()
    assert frame.locator("#submit").is_enabled()

    checkout.pay(VISA)
    checkout.wait_for_message("CHECKOUT_SUCCESS")
    assert checkout.types() == DECLINED_THEN_PAID


def test_three_d_secure_approved(open_in_browser: Any, catalog: Catalog) -> None:
    checkout: Checkout = open_in_browser(catalog.monthly.id)

    checkout.pay(THREE_D_SECURE)
    challenge = checkout.wait_for_message("3DS_REQUIRED")
    checkout.frame.get_by_role("button", name="Complete authentication").click()
    success = checkout.wait_for_message("CHECKOUT_SUCCESS")

    assert checkout.types() == ["CHECKOUT_READY", "PROCESSING", "3DS_REQUIRED", "CHECKOUT_SUCCESS"]
    assert challenge["payload"]["threeDSecureUrl"].startswith("http")
    assert success["payload"]["subscription"]["status"] == "active"


def test_three_d_secure_failed_then_another_card(open_in_browser: Any, catalog: Catalog) -> None:
    checkout: Checkout = open_in_browser(catalog.one_time.id)

    checkout.pay(THREE_D_SECURE)
    checkout.wait_for_message("3DS_REQUIRED")
    checkout.frame.get_by_role("button", name="Fail authentication").click()
    failed = checkout.wait_for_message("PAYMENT_FAILED")
    assert failed["payload"]["code"] == "payment_intent_authentication_failure"
    assert "authenticate" in checkout.frame.get_by_role("alert").inner_text()

    checkout.pay(VISA)
    checkout.wait_for_message("CHECKOUT_SUCCESS")
    assert checkout.types() == [
        "CHECKOUT_READY",
        "PROCESSING",
        "3DS_REQUIRED",
        "PAYMENT_FAILED",
        "PROCESSING",
        "CHECKOUT_SUCCESS",
    ]


def test_an_expired_checkout_shows_a_message_and_nothing_else(
    open_in_browser: Any, catalog: Catalog, context: Any
) -> None:
    checkout: Checkout = open_in_browser(catalog.one_time.id)
    with db.transaction() as session:
        row = session.get(CheckoutSession, checkout.id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)

    checkout.page.reload()
    error = checkout.wait_for_message("CHECKOUT_ERROR")

    assert error == {
        "type": "CHECKOUT_ERROR",
        "payload": {"error": "This checkout has expired. Please start the purchase again."},
    }
    frame = checkout.frame
    assert frame.get_by_role("heading").inner_text() == "Checkout unavailable"
    html = frame.locator("html").inner_html()
    assert "$29.00" not in html and "Lifetime" not in html and checkout.client_secret not in html


def test_the_outcome_arrives_over_our_websocket(
    open_in_browser: Any, catalog: Catalog, context: Any
) -> None:
    sockets: list[str] = []
    page = context.new_page()
    page.on("websocket", lambda ws: sockets.append(ws.url))
    checkout: Checkout = open_in_browser(catalog.one_time.id, page=page)

    checkout.pay(VISA)
    checkout.wait_for_message("CHECKOUT_SUCCESS")
    assert [url.split("/embed/")[1] for url in sockets] == [f"checkout/{checkout.id}/ws"]


def test_without_websockets_and_event_streams_the_page_polls(
    open_in_browser: Any, catalog: Catalog, context: Any
) -> None:
    streams: list[str] = []
    context.route_web_socket("**/embed/checkout/*/ws", lambda ws: ws.close())

    def refuse(route: Any) -> None:
        streams.append(route.request.url)
        route.abort()

    context.route("**/embed/checkout/*/stream", refuse)
    checkout: Checkout = open_in_browser(catalog.one_time.id)

    checkout.pay(DECLINED)
    checkout.wait_for_message("PAYMENT_FAILED")
    checkout.pay(VISA)
    checkout.wait_for_message("CHECKOUT_SUCCESS")
    assert streams, "the page fell back to server-sent events before polling"
    assert checkout.types() == DECLINED_THEN_PAID


def test_without_websockets_the_page_follows_server_sent_events(
    open_in_browser: Any, catalog: Catalog, context: Any
) -> None:
    context.route_web_socket("**/embed/checkout/*/ws", lambda ws: ws.close())
    page = context.new_page()
    streams: list[str] = []
    page.on(
        "response",
        lambda r: streams.append(r.headers.get("content-type", "")) if "/stream" in r.url else None,
    )
    checkout: Checkout = open_in_browser(catalog.one_time.id, page=page)

    checkout.pay(VISA)
    checkout.wait_for_message("CHECKOUT_SUCCESS")
    assert streams and streams[0].startswith("text/event-stream")
