"""Browser tests: headless Chromium (Debian's package) driven by Playwright, against the real
stack — gunicorn, a Celery worker, the Stripe emulator (and its Stripe.js stand-in) delivering
webhooks to that gunicorn.

One browser, one web server and one worker for the whole session (the demo's module has a
development-mode web server of its own); each test gets a
fresh browser context (its own cookies and storage) and a fresh emulator. The merchant's page
that frames the checkout is served by a small HTTP server of the test process on `localhost`
(the app is on `127.0.0.1`), so the iframe is genuinely cross-origin.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.factories import Buyer, Merchant, make_buyer, make_merchant
from tests.support.billing import Catalog, catalog  # noqa: F401 (fixture)
from tests.support.processes import ManagedProcess, start_celery_worker, wait_until
from tests.support.server import WebServer, start_web_server

playwright_sync = pytest.importorskip("playwright.sync_api")

WEBHOOK_SECRET = os.environ["STRIPE_WEBHOOK_SECRET"]
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
# A CVC and card numbers that no id or timestamp in a log could contain by chance.
TEST_CVC = "7391"
VISA = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"
THREE_D_SECURE = "4000 0027 6000 3184"


def chromium_path() -> str:
    explicit = os.environ.get("CHROMIUM")
    found = explicit or next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)
    if not found:
        pytest.fail("Chromium is not installed: run `make browser` (apt-get install chromium)")
    return found


class ParentSite:
    """The merchant's site: serves whatever page a test puts at a path."""

    def __init__(self) -> None:
        pages: dict[str, str] = {}
        self.pages = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://localhost:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def put(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.origin + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def parent_site() -> Iterator[ParentSite]:
    site = ParentSite()
    yield site
    site.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            # Root in a container has no user namespaces for Chromium's sandbox.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


# Package scope, not session: a worker left running after the browser tests would consume the
# next tests' tasks (a catalog's mirror task before their emulator reset, say) behind their back.
@pytest.fixture(scope="package")
def web_server(app: Any) -> Iterator[WebServer]:
    """gunicorn as in production, started after `app` so it inherits the session's emulator."""
    server = start_web_server(workers=1, env={"LOG_LEVEL": "INFO"})
    yield server
    server.stop()


@pytest.fixture(scope="package")
def worker(app: Any) -> Iterator[ManagedProcess]:
    process = start_celery_worker(concurrency=2)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def webhook_secret() -> str:
    """The webhook secret the web server verifies with (a module may run its own server)."""
    return WEBHOOK_SECRET


@pytest.fixture()
def stack(
    stripe_emulator: Any, web_server: WebServer, worker: ManagedProcess, webhook_secret: str
) -> WebServer:
    """The freshly reset emulator delivering its webhooks to the web server."""
    stripe_emulator.register_webhook(f"{web_server.url}/stripe/webhooks", secret=webhook_secret)
    return web_server


@pytest.fixture()
def merchant(app_context: None, parent_site: ParentSite) -> Merchant:
    return make_merchant(allowed_origins=(parent_site.origin,))


@pytest.fixture()
def buyer(merchant: Merchant) -> Buyer:
    return make_buyer(merchant)


@pytest.fixture()
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1024, "height": 900})
    yield ctx
    ctx.close()


PARENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>Shop</h1>
<iframe id="checkout" title="Secure Checkout" src="%(src)s"
  style="width:100%%;height:700px;border:0" allow="payment"
  sandbox="allow-scripts allow-same-origin allow-forms allow-popups"></iframe>
<script>
  // What the SDK's modal does: record every message from the checkout's origin, answer
  // CHECKOUT_READY with INIT_CHECKOUT.
  window.messages = [];
  window.addEventListener("message", function (event) {
    if (event.origin !== %(app_origin)s) return;
    window.messages.push(event.data);
    if (event.data && event.data.type === "CHECKOUT_READY") {
      document.getElementById("checkout").contentWindow.postMessage(
        {type: "INIT_CHECKOUT", sessionId: %(checkout_id)s,
         config: {theme: "light", locale: "en", variables: {colorPrimary: "#0a7d4f"}}},
        %(app_origin)s);
    }
  });
</script></body></html>"""


@dataclass
class Checkout:
    """One open checkout, framed by the merchant's page in a browser tab."""

    id: str
    client_secret: str
    page: Any
    server: WebServer
    console: list[str]

    @property
    def frame(self) -> Any:
        return self.page.frame_locator("#checkout")

    def messages(self) -> list[dict[str, Any]]:
        return list(self.page.evaluate("window.messages"))

    def types(self, *, heights: bool = False) -> list[str]:
        return [m["type"] for m in self.messages() if heights or m["type"] != "HEIGHT_CHANGED"]

    def wait_for_message(self, kind: str, count: int = 1, timeout: float = 30.0) -> dict[str, Any]:
        found = wait_until(
            lambda: [m for m in self.messages() if m["type"] == kind][count - 1 :],
            timeout=timeout,
            what=f"{kind} #{count} (got {self.types(heights=True)}; console: {self.console})",
        )
        return found[0]  # type: ignore[no-any-return]

    def pay(self, number: str, expiry: str = "12 / 34", cvc: str = TEST_CVC) -> None:
        frame = self.frame
        frame.get_by_label("Card number").fill(number)
        frame.get_by_label("Expiration date (MM / YY)").fill(expiry)
        frame.get_by_label("Security code (CVC)").fill(cvc)
        frame.locator("#submit").click()


@pytest.fixture()
def open_in_browser(
    client: FlaskClient, buyer: Buyer, context: Any, stack: WebServer, parent_site: ParentSite
) -> Callable[..., Checkout]:
    """Create an open checkout for a price through the SDK API, and open the merchant's page
    that frames it."""

    def open_(price_id: Any, query: str = "", page: Any = None) -> Checkout:
        response = client.post(
            "/v1/checkout/create",
            json={"price_id": str(price_id)},
            headers={**buyer.headers, "Prefer": "wait=10"},
        )
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        checkout_id = body["id"]
        tab = page or context.new_page()
        console: list[str] = []
        tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        tab.on("pageerror", lambda error: console.append(f"error: {error}"))
        src = f"{stack.url}/embed/checkout/{checkout_id}{query}"
        html = PARENT_PAGE % {
            "src": src,
            "app_origin": json.dumps(stack.url),
            "checkout_id": json.dumps(checkout_id),
        }
        tab.goto(parent_site.put(f"/checkout/{checkout_id}", html))
        checkout = Checkout(checkout_id, body["client_secret"], tab, stack, console)
        checkout.wait_for_message("CHECKOUT_READY")
        return checkout

    return open_
