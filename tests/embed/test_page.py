"""`/embed/checkout/{id}` and its id-scoped routes, without a browser: who may frame the page,
what it loads, what an id alone reveals, the confirm, and the rate limits."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from app import settings_of
from app.db import db
from app.embed import service
from app.rate_limit import EMBED_PER_CHECKOUT, rule
from models import CheckoutSession
from models.base import utcnow
from tests.factories import Buyer, Merchant, make_buyer, make_merchant, make_product
from tests.support.limits import configured_limits

SHOP = "https://shop.example"


@pytest.fixture()
def merchant(app_context: None) -> Merchant:
    return make_merchant(allowed_origins=(SHOP,))


@pytest.fixture()
def open_checkout(merchant: Merchant, buyer: Buyer) -> Callable[..., CheckoutSession]:
    """A committed `open` checkout, as `checkout.prepare` leaves one."""
    product = make_product(merchant, name="Pro", prices=[{"amount": 1500, "currency": "usd"}])

    def make(**fields: Any) -> CheckoutSession:
        values: dict[str, Any] = {
            "status": "open",
            "intent_type": "payment",
            "client_secret": f"pi_{uuid.uuid4().hex}_secret_{uuid.uuid4().hex}",
            "expires_at": utcnow() + timedelta(hours=1),
            **fields,
        }
        checkout = CheckoutSession(
            organization_id=buyer.organization_id,
            customer_id=buyer.customer_id,
            product_id=product.id,
            price_id=product.prices[0].id,
            idempotency_key=f"test:{uuid.uuid4()}",
            amount=1500,
            currency="usd",
            **values,
        )
        db.session.add(checkout)
        db.session.commit()
        return checkout

    return make


def _config(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="checkout-config">(.*?)</script>', html)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def _directives(response: Any) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {d.split(" ", 1)[0]: d.partition(" ")[2] for d in policy.split("; ")}


def test_only_the_merchants_origins_and_ours_may_frame_the_page(
    client: Any, open_checkout: Callable[..., CheckoutSession]
) -> None:
    checkout = open_checkout()
    response = client.get(f"/embed/checkout/{checkout.id}", headers={"Referer": f"{SHOP}/pricing"})

    assert response.status_code == 200
    directives = _directives(response)
    assert directives["frame-ancestors"] == f"{SHOP} http://localhost"
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    # Scripts: ours and Stripe.js (here the emulator's stand-in), nothing inline.
    stripe_base = settings_of(client.application).stripe_api_base
    assert directives["script-src"] == f"'self' {stripe_base}"
    assert f'src="{stripe_base}/js/v3/"' in response.get_data(as_text=True)
    config = _config(response.get_data(as_text=True))
    assert config["parentOrigins"] == [SHOP, "http://localhost"]
    assert config["referrerOrigin"] == SHOP


def test_the_page_carries_no_secret(
    client: Any, open_checkout: Callable[..., CheckoutSession], buyer: Buyer
) -> None:
    checkout = open_checkout()
    html = client.get(f"/embed/checkout/{checkout.id}").get_data(as_text=True)
    assert checkout.client_secret not in html
    assert buyer.token not in html
    assert "bos_" not in html


def test_a_referrer_that_is_not_allowed_is_not_trusted(
    client: Any, open_checkout: Callable[..., CheckoutSession]
) -> None:
    checkout = open_checkout()
    response = client.get(
        f"/embed/checkout/{checkout.id}", headers={"Referer": "https://evil.example/x"}
    )
    assert _config(response.get_data(as_text=True))["referrerOrigin"] is None


@pytest.mark.parametrize("raw_id", ["3f1c6a52-8d0e-4b7a-9c1f-2e5d7a9b4c10", "not-a-uuid"])
def test_an_unknown_id_gets_a_message_and_nothing_else(client: Any, raw_id: str) -> None:
    response = client.get(f"/embed/checkout/{raw_id}")

    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "This checkout link is not valid." in html
    config = _config(html)
    assert config["parentOrigins"] == [] and config["checkoutId"] is None
    assert _directives(response)["frame-ancestors"] == "http://localhost"
    assert client.get(f"/embed/checkout/{raw_id}/state").status_code == 404


def test_an_expired_checkout_shows_only_that_it_expired(
    client: Any, open_checkout: Callable[..., CheckoutSession]
) -> None:
    checkout = open_checkout(expires_at=utcnow() - timedelta(seconds=1))

    page = client.get(f"/embed/checkout/{checkout.id}")
    assert page.status_code == 410
    html = page.get_data(as_text=True)
    assert "This checkout has expired." in html
    assert "Pro" not in html and "15.00" not in html and "stateUrl" not in html
    state = client.get(f"/embed/checkout/{checkout.id}/state")
    assert state.status_code == 410
    assert state.get_json()["code"] == "checkout_unavailable"


def test_the_state_is_that_checkouts_own(
    client: Any, open_checkout: Callable[..., CheckoutSession]
) -> None:
    mine, other = open_checkout(), open_checkout()
    body = client.get(f"/embed/checkout/{mine.id}/state").get_json()
    assert body["id"] == str(mine.id)
    assert body["client_secret"] == mine.client_secret != other.client_secret
    assert body["product_name"] == "Pro" and body["amount"] == 1500
    assert body["sdk_subscription"] is None


def test_confirm_by_id_is_the_checkout_services_confirm(
    client: Any, open_checkout: Callable[..., CheckoutSession]
) -> None:
    checkout = open_checkout()
    url = f"/embed/checkout/{checkout.id}/confirm"

    assert client.post(url, json={"paymentMethodId": "4242424242424242"}).status_code == 422
    first = client.post(url, json={"paymentMethodId": "pm_card_visa"})
    assert first.status_code == 202
    assert first.get_json()["status"] == "processing"
    again = client.post(url, json={"paymentMethodId": "pm_card_visa"})
    assert again.status_code == 409
    assert again.get_json()["code"] == "checkout_not_confirmable"


def test_the_sdk_confirms_card_testing_limit_counts_the_pages_confirms_too(
    app: Flask, client: Any, open_checkout: Callable[..., CheckoutSession]
) -> None:
    checkout = open_checkout()
    url = f"/embed/checkout/{checkout.id}/confirm"
    with configured_limits(app, confirm_per_checkout="1/hour"):
        assert client.post(url, json={"paymentMethodId": "pm_card_visa"}).status_code == 202
        again = client.post(url, json={"paymentMethodId": "pm_card_visa"})
        # Limited before the checkout's state is even looked at (409 otherwise).
        assert again.status_code == 429
        assert int(again.headers["Retry-After"]) >= 1


def test_one_checkout_id_is_rate_limited(client: Any) -> None:
    probe = f"/embed/checkout/{uuid.uuid4()}"
    limit = rule(EMBED_PER_CHECKOUT).amount
    statuses = [client.get(probe).status_code for _ in range(limit + 1)]
    assert statuses[:-1] == [404] * limit
    assert statuses[-1] == 429


def test_real_stripe_js_unless_the_app_talks_to_the_emulator(app: Flask) -> None:
    real = Flask("real")
    real.config["BILLINGOS"] = dataclasses.replace(settings_of(app), stripe_api_base=None)
    emulated = Flask("emulated")
    emulated.config["BILLINGOS"] = dataclasses.replace(
        settings_of(app), stripe_api_base="http://127.0.0.1:12111/"
    )
    assert service.stripe_js_url(real) == "https://js.stripe.com/v3/"
    assert service.stripe_js_url(emulated) == "http://127.0.0.1:12111/js/v3/"


def test_the_id_alone_opens_the_checkout_whoever_asks(
    client: Any, merchant: Merchant, open_checkout: Callable[..., CheckoutSession]
) -> None:
    # The id is the capability: whoever holds it sees that checkout and no other.
    stranger = make_buyer(merchant, external_id="user_2")
    checkout = open_checkout()
    body = client.get(f"/embed/checkout/{checkout.id}/state", headers=stranger.headers).get_json()
    assert body["id"] == str(checkout.id)
    assert set(body) >= {"status", "client_secret", "product_name"}
    assert "customer_id" not in body


def test_with_real_stripe_the_page_loads_and_allows_only_stripes_hosts(
    client: Any,
    open_checkout: Callable[..., CheckoutSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = dataclasses.replace(settings_of(client.application), stripe_api_base=None)
    monkeypatch.setitem(client.application.config, "BILLINGOS", real)
    checkout = open_checkout()

    response = client.get(f"/embed/checkout/{checkout.id}")

    assert '<script src="https://js.stripe.com/v3/">' in response.get_data(as_text=True)
    directives = _directives(response)
    assert directives["script-src"] == "'self' https://js.stripe.com https://*.js.stripe.com"
    assert directives["connect-src"] == "'self' ws://localhost https://api.stripe.com"
    assert "127.0.0.1" not in response.headers["Content-Security-Policy"]
