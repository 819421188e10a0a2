"""The postMessage protocol beyond a purchase: appearance from the query string and from
INIT_CHECKOUT / UPDATE_CONFIG, cancelling, and who may frame the page at all."""

from __future__ import annotations

import json
from typing import Any

from tests.browser.conftest import PARENT_PAGE, Checkout, ParentSite
from tests.support.billing import Catalog
from tests.support.processes import wait_until


def _style(checkout: Checkout, name: str) -> str:
    return str(
        checkout.frame.locator("html").evaluate(
            f"el => getComputedStyle(el).getPropertyValue('{name}').trim()"
        )
    )


def _send(checkout: Checkout, message: dict[str, Any]) -> None:
    checkout.page.evaluate(
        "([message, origin]) => document.getElementById('checkout').contentWindow"
        ".postMessage(message, origin)",
        [message, checkout.server.url],
    )


def test_appearance_comes_from_the_query_string_and_init_checkout(
    open_in_browser: Any, catalog: Catalog
) -> None:
    checkout: Checkout = open_in_browser(
        catalog.one_time.id, query="?theme=dark&bg=101010&radius=12px&font=Georgia&env=test"
    )
    # INIT_CHECKOUT (sent by the parent on CHECKOUT_READY) comes later and wins where it
    # speaks: its primary colour, and its theme "light" over the query's "dark".
    wait_until(lambda: _style(checkout, "--color-primary") == "#0a7d4f", timeout=5)
    assert checkout.frame.locator("html").get_attribute("data-theme") == "light"
    assert _style(checkout, "--color-background") == "#101010"
    assert _style(checkout, "--border-radius") == "12px"
    assert _style(checkout, "--font-family") == "Georgia"


def test_update_config_restyles_and_ignores_what_is_not_a_style_value(
    open_in_browser: Any, catalog: Catalog
) -> None:
    checkout: Checkout = open_in_browser(catalog.one_time.id)
    wait_until(lambda: _style(checkout, "--color-primary") == "#0a7d4f", timeout=5)

    _send(
        checkout,
        {
            "type": "UPDATE_CONFIG",
            "config": {
                "theme": "dark",
                "locale": "de-DE",
                "variables": {"colorPrimary": "red;background:url(//evil)", "colorText": "#eee"},
            },
        },
    )
    wait_until(lambda: checkout.frame.locator("html").get_attribute("data-theme") == "dark")
    assert _style(checkout, "--color-primary") == "#0a7d4f"
    assert _style(checkout, "--color-text") == "#eee"
    assert checkout.frame.locator("#price").inner_text() == "29,00\xa0$"


def test_cancel_tells_the_parent_to_close(open_in_browser: Any, catalog: Catalog) -> None:
    checkout: Checkout = open_in_browser(catalog.one_time.id)
    checkout.frame.get_by_role("button", name="Cancel").click()
    assert checkout.wait_for_message("CHECKOUT_CLOSE") == {"type": "CHECKOUT_CLOSE"}


def test_a_site_the_merchant_did_not_allow_cannot_frame_the_checkout(
    open_in_browser: Any, catalog: Catalog, parent_site: ParentSite, context: Any
) -> None:
    allowed: Checkout = open_in_browser(catalog.one_time.id)
    # The same page from 127.0.0.1 instead of localhost: another origin, not allowed.
    foreign = parent_site.origin.replace("localhost", "127.0.0.1")
    html = PARENT_PAGE % {
        "src": f"{allowed.server.url}/embed/checkout/{allowed.id}",
        "app_origin": json.dumps(allowed.server.url),
        "checkout_id": json.dumps(allowed.id),
    }
    page = context.new_page()
    page.goto(foreign + parent_site.put("/foreign", html).removeprefix(parent_site.origin))

    wait_until(lambda: any(f.url.startswith("chrome-error:") for f in page.frames), timeout=10)
    assert page.evaluate("window.messages") == []
