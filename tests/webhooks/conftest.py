"""Fixtures for the webhook pipeline: signed Stripe events, a real web server, inbox readers."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import settings_of
from app.db import db
from models import CheckoutSession, Product, ProductPrice, StripeEvent
from models.base import utcnow
from tasks.stripe_events import process_event
from tests.factories import Buyer, Merchant, make_buyer, make_merchant, make_product
from tests.support.isolation import current_redis_url
from tests.support.server import WebServer
from tests.support.server import start_web_server as run_web_server
from tests.support.stripe_fixtures import stripe_fixture_resources
from tests.support.stripe_webhooks import signature_header

WEBHOOK_PATH = "/stripe/webhooks"


# ---------------------------------------------------------------------------- events


def stripe_fixture(name: str) -> dict[str, Any]:
    """Stripe's official example object of a resource (tests/fixtures/stripe/fixtures3.json)."""
    resources: dict[str, Any] = stripe_fixture_resources()
    return json.loads(json.dumps(resources[name]))


@pytest.fixture()
def webhook_secret(app: Flask) -> str:
    return settings_of(app).stripe_webhook_secret


@pytest.fixture()
def post_event(client: FlaskClient, webhook_secret: str) -> Callable[..., Any]:
    """POST an event (a dict, or a raw body) to the endpoint, signed unless told otherwise."""

    def post(event: dict[str, Any] | str, *, signature: str | None = None) -> Any:
        payload = event if isinstance(event, str) else json.dumps(event)
        header = signature if signature is not None else signature_header(payload, webhook_secret)
        return client.post(
            WEBHOOK_PATH,
            data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )

    return post


def inbox(stripe_event_id: str) -> StripeEvent | None:
    db.session.expire_all()
    return db.session.execute(
        select(StripeEvent).where(StripeEvent.stripe_event_id == stripe_event_id)
    ).scalar_one_or_none()


def inbox_count() -> int:
    db.session.expire_all()
    return len(db.session.execute(select(StripeEvent.id)).all())


def queued_event_ids() -> list[str]:
    """Stripe event ids of the `stripe.process_event` messages waiting in the broker."""
    ids = []
    for raw in redis.Redis.from_url(current_redis_url()).lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "stripe.process_event":
            ids.append(json.loads(_body(message))[0][0])
    return ids


def _body(message: dict[str, Any]) -> str:
    return base64.b64decode(message["body"]).decode()


def process(stripe_event_id: str) -> str:
    """Run the task in this process (retries run at once, without their countdown)."""
    result: str = process_event.apply(args=[stripe_event_id]).get()
    return result


def count(model, *where) -> int:  # type: ignore[no-untyped-def]
    db.session.expire_all()
    return int(db.session.execute(select(func.count()).select_from(model).where(*where)).scalar())


# ---------------------------------------------------------------------------- our rows


@dataclass
class Shop:
    merchant: Merchant
    buyer: Buyer
    one_time: ProductPrice
    monthly: ProductPrice
    one_time_product: Product
    monthly_product: Product


@pytest.fixture()
def shop(app_context: None) -> Shop:
    merchant = make_merchant()
    buyer = make_buyer(merchant)
    lifetime = make_product(
        merchant,
        name="Lifetime export",
        prices=[{"amount": 2900, "currency": "usd"}],
        features=[{"key": "export", "name": "Export"}],
    )
    pro = make_product(merchant, name="Pro")
    return Shop(merchant, buyer, lifetime.prices[0], pro.prices[0], lifetime, pro)


def open_checkout(
    shop: Shop,
    price: ProductPrice,
    *,
    stripe_payment_intent_id: str | None = None,
    status: str = "open",
) -> CheckoutSession:
    """A checkout as `checkout.prepare` leaves it: open, with its Stripe PaymentIntent recorded."""
    checkout = CheckoutSession(
        organization_id=shop.merchant.id,
        customer_id=shop.buyer.customer_id,
        product_id=price.product_id,
        price_id=price.id,
        idempotency_key=f"test:{uuid.uuid4()}",
        status=status,
        amount=price.amount,
        currency=price.currency,
        intent_type="payment",
        stripe_payment_intent_id=stripe_payment_intent_id or f"pi_test_{secrets.token_hex(8)}",
        expires_at=utcnow() + timedelta(hours=1),
    )
    db.session.add(checkout)
    db.session.commit()
    return checkout


def succeeded_payment_intent(checkout: CheckoutSession) -> dict[str, Any]:
    """Stripe's PaymentIntent fixture, made into the succeeded intent of `checkout`."""
    payment_intent = stripe_fixture("payment_intent")
    payment_intent.update(
        id=checkout.stripe_payment_intent_id,
        amount=checkout.amount,
        amount_received=checkout.amount,
        currency=checkout.currency,
        status="succeeded",
        last_payment_error=None,
        next_action=None,
        client_secret=f"{checkout.stripe_payment_intent_id}_secret_test",
        metadata={
            "billingos_organization_id": str(checkout.organization_id),
            "billingos_checkout_id": str(checkout.id),
        },
    )
    return payment_intent


# ---------------------------------------------------------------------------- a real server


def post_webhook(
    server: WebServer, payload: str, signature: str, timeout: float = 30.0
) -> tuple[int, Any]:
    """Deliver a webhook over HTTP, as Stripe does; returns (status, JSON body)."""
    response = requests.post(
        server.url + WEBHOOK_PATH,
        data=payload.encode(),
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        timeout=timeout,
    )
    return response.status_code, response.json()


@pytest.fixture()
def start_web_server(app: Flask) -> Iterator[Callable[..., WebServer]]:
    """Start the API under gunicorn (`start_web_server(env={...})`); stopped after the test."""
    settings = settings_of(app)
    started: list[WebServer] = []

    def start(env: dict[str, str] | None = None) -> WebServer:
        base = {"STRIPE_WEBHOOK_SECRET": settings.stripe_webhook_secret, "ACCESS_LOG": "0"}
        if settings.stripe_api_base:
            base["STRIPE_API_BASE"] = settings.stripe_api_base
        server = run_web_server(workers=1, env={**base, **(env or {})})
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def prepared_checkout(client: FlaskClient, shop: Shop, price: ProductPrice) -> CheckoutSession:
    """A checkout made through the API and prepared in this process (no worker): open, with
    its Stripe intent made in the emulator."""
    from app.checkout.stripe_steps import prepare_checkout

    created = client.post(
        "/v1/checkout/create", json={"price_id": str(price.id)}, headers=shop.buyer.headers
    )
    checkout_id = uuid.UUID(created.get_json()["id"])
    prepare_checkout(checkout_id)
    db.session.remove()
    checkout = db.session.get(CheckoutSession, checkout_id)
    assert checkout is not None and checkout.status == "open"
    return checkout
