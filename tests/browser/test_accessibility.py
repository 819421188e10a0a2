"""The checkout page with a keyboard, a screen reader's view of it, and a 360 px phone."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import TEST_CVC, VISA, Checkout
from tests.support.billing import Catalog


def _focused_label(frame: Any) -> str:
    # What a screen reader announces for the focused control: its label, or its own text.
    return str(
        frame.locator(":focus").evaluate(
            "el => (el.labels && el.labels.length ? el.labels[0].textContent : el.textContent)"
            ".trim()"
        )
    )


def test_every_field_is_labelled_and_tab_follows_the_form(
    open_in_browser: Any, catalog: Catalog
) -> None:
    checkout: Checkout = open_in_browser(catalog.one_time.id)
    frame = checkout.frame
    unlabelled = frame.locator("input, select, textarea").evaluate_all(
        "els => els.filter(el => !(el.labels && el.labels.length)"
        " && !el.getAttribute('aria-label')).map(el => el.id)"
    )
    assert unlabelled == []
    assert frame.get_by_role("heading", level=1).inner_text() == catalog.lifetime.name

    frame.get_by_label("Card number").focus()
    order = [_focused_label(frame)]
    for _ in range(4):
        checkout.page.keyboard.press("Tab")
        order.append(_focused_label(frame))
    assert order == [
        "Card number",
        "Expiration date (MM / YY)",
        "Security code (CVC)",
        "Pay $29.00",
        "Cancel",
    ]


def test_enter_in_the_form_pays_and_errors_are_announced(
    open_in_browser: Any, catalog: Catalog
) -> None:
    checkout: Checkout = open_in_browser(catalog.one_time.id)
    frame = checkout.frame
    keyboard = checkout.page.keyboard

    frame.get_by_label("Card number").focus()
    keyboard.type(VISA)
    keyboard.press("Enter")  # incomplete: the element says what is missing, focus goes there
    assert frame.get_by_role("alert").inner_text() == "Your card's expiration date is incomplete."
    assert _focused_label(frame) == "Expiration date (MM / YY)"

    keyboard.type("12 / 34")
    keyboard.press("Tab")
    keyboard.type(TEST_CVC)
    keyboard.press("Enter")
    checkout.wait_for_message("CHECKOUT_SUCCESS")
    assert _focused_label(frame) == "Payment complete"


def test_the_page_fits_a_360_px_phone(browser: Any, open_in_browser: Any, catalog: Catalog) -> None:
    phone = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    try:
        checkout: Checkout = open_in_browser(catalog.one_time.id, page=phone.new_page())
        frame = checkout.frame
        widths = frame.locator("html").evaluate("el => [el.scrollWidth, el.clientWidth]")
        assert widths[0] <= widths[1], f"horizontal scroll at 360 px: {widths}"
        assert widths[1] <= 360
        button = frame.locator("#submit").bounding_box()
        assert button is not None and button["x"] >= 0 and button["x"] + button["width"] <= 360
        assert frame.get_by_label("Card number").bounding_box()["width"] > 200
        checkout.pay(VISA)
        checkout.wait_for_message("CHECKOUT_SUCCESS")
    finally:
        phone.close()
