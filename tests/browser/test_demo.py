"""The demo merchant app (`/demo`, development only): a purchase through the modal, and the
buyer's entitlements appearing on the page. Screenshots go to $E2E_SCREENSHOTS (`make e2e`
sets docs/screenshots) or the test's temporary directory."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import TEST_CVC, VISA
from tests.support.server import WebServer, start_web_server


@pytest.fixture(scope="module")
def webhook_secret() -> str:
    # Outside the test mode the server refuses a secret published in the repository.
    return "whsec_" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def web_server(app: Any, webhook_secret: str) -> Iterator[WebServer]:
    env = {"BILLINGOS_ENV": "development", "STRIPE_WEBHOOK_SECRET": webhook_secret}
    server = start_web_server(workers=1, env=env)
    yield server
    server.stop()


@pytest.fixture()
def demo_organization(app: Any, app_context: None) -> None:
    result = app.test_cli_runner().invoke(args=["billingos", "seed-demo", "--json"])
    assert result.exit_code == 0, result.output


@pytest.fixture()
def screenshots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("E2E_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def test_a_purchase_on_the_demo_shows_the_new_entitlements(
    stack: WebServer, demo_organization: None, context: Any, screenshots: Path
) -> None:
    page = context.new_page()
    page.set_viewport_size({"width": 1100, "height": 800})
    page.goto(f"{stack.url}/demo?user=buyer_{uuid.uuid4().hex[:8]}")
    buy = page.get_by_role("button", name="Buy Lifetime export pack — $29.00")
    buy.wait_for()
    assert page.locator("#entitlements").inner_text() == "None yet"
    page.screenshot(path=str(screenshots / "demo-before.png"))

    buy.click()
    frame = page.frame_locator("#checkout-frame")
    frame.get_by_label("Card number").fill(VISA)
    frame.get_by_label("Expiration date (MM / YY)").fill("12 / 34")
    frame.get_by_label("Security code (CVC)").fill(TEST_CVC)
    page.screenshot(path=str(screenshots / "demo-checkout.png"))
    frame.locator("#submit").click()

    page.get_by_text("Thank you! Your purchase is active.").wait_for()
    page.locator("#entitlements").get_by_text("export (purchase)").wait_for()
    assert not page.locator("#checkout-modal").is_visible()
    page.screenshot(path=str(screenshots / "demo-after.png"))


def test_the_demo_does_not_exist_outside_development(client: Any) -> None:
    assert client.get("/demo").status_code == 404
    assert client.post("/demo/session", json={}).status_code in (404, 405)
