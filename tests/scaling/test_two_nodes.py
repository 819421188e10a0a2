"""Two nodes: two independent web + worker pairs sharing one Postgres and one Redis.

This is what "more machines" means for BillingOS: nothing but Postgres and Redis is shared.
A buyer watches on node A while Stripe's webhooks reach node B and B's worker processes them;
the entitlement cache (in the shared Redis) answers the same on both nodes, and once a refund
has revoked a purchase neither node serves it again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.streams.clients import StatusSocket
from tests.support.processes import wait_until
from tests.support.server import WebServer, start_web_server
from tests.webhooks.conftest import WEBHOOK_PATH


@pytest.fixture()
def node_a() -> Iterator[WebServer]:
    server = start_web_server()
    yield server
    server.stop()


@pytest.fixture()
def node_b() -> Iterator[WebServer]:
    server = start_web_server()
    yield server
    server.stop()


def entitlement_keys(node: WebServer, headers: dict[str, str]) -> list[str]:
    answer = requests.get(f"{node.url}/v1/customer/entitlements", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return [grant["feature_key"] for grant in answer.json()["data"]]


def test_a_purchase_webhooked_to_node_b_is_seen_on_node_a_and_its_refund_on_both(
    node_a: WebServer,
    node_b: WebServer,
    start_worker: Any,
    stripe_emulator: Any,
    app: Any,
    merchant: Any,
    buyer: Any,
) -> None:
    from app import settings_of
    from tests.factories import make_product

    webhook_secret = settings_of(app).stripe_webhook_secret

    product = make_product(merchant, prices=[{"amount": 2900, "currency": "usd"}])
    worker_a = start_worker(concurrency=1)
    start_worker(concurrency=1)  # node B's
    # Stripe knows one endpoint: node B's.
    stripe_emulator.register_webhook(node_b.url + WEBHOOK_PATH, webhook_secret)

    created = requests.post(
        f"{node_a.url}/v1/checkout/create",
        json={"price_id": str(product.prices[0].id)},
        headers={**buyer.headers, "Prefer": "wait=10"},
        timeout=20,
    )
    assert created.status_code == 201, created.text
    checkout = created.json()
    assert entitlement_keys(node_a, buyer.headers) == []
    assert entitlement_keys(node_b, buyer.headers) == []  # both cached now
    ws = StatusSocket(f"{node_a.ws_url}/v1/checkout/{checkout['id']}/ws?token={buyer.token}")
    ws.until_status("open")

    # Node A's worker goes away: whatever happens next is node B's worker's doing.
    worker_a.stop()
    intent_id = checkout["client_secret"].split("_secret_")[0]
    stripe = stripe_emulator.client()
    started = time.monotonic()
    stripe.v1.payment_intents.confirm(intent_id, params={"payment_method": "pm_card_visa"})
    seen = ws.until_status("succeeded")
    assert seen["data"]["status"] == "succeeded"
    assert time.monotonic() - started < 30
    # The purchase's grant replaced the cached "nothing" on both nodes.
    assert entitlement_keys(node_a, buyer.headers) == ["pro"]
    assert entitlement_keys(node_b, buyer.headers) == ["pro"]

    stripe.v1.refunds.create(params={"payment_intent": intent_id})
    wait_until(lambda: entitlement_keys(node_b, buyer.headers) == [], timeout=30, interval=0.05)
    # Once one node has stopped serving the grant, no node serves it again.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert entitlement_keys(node_a, buyer.headers) == []
        assert entitlement_keys(node_b, buyer.headers) == []
