"""Fixtures for the real-time tests: checkouts committed from the test process, and servers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from app.db import db
from models import CheckoutSession
from models.base import utcnow
from tests.conftest import METRICS_TOKEN
from tests.factories import Buyer, Merchant, make_product
from tests.support.processes import PrivateRedis
from tests.support.server import WebServer, start_web_server


@pytest.fixture()
def make_checkout(merchant: Merchant, buyer: Buyer) -> Callable[..., CheckoutSession]:
    """A committed `pending` checkout of `buyer`, written as the create endpoint writes one."""
    product = make_product(merchant, prices=[{"amount": 1500, "currency": "usd"}])
    price = product.prices[0]

    def make(for_buyer: Buyer | None = None, **fields: Any) -> CheckoutSession:
        owner = for_buyer or buyer
        checkout = CheckoutSession(
            organization_id=owner.organization_id,
            customer_id=owner.customer_id,
            product_id=product.id,
            price_id=price.id,
            idempotency_key=f"test:{uuid.uuid4()}",
            amount=price.amount,
            currency=price.currency,
            expires_at=utcnow() + timedelta(hours=1),
            **fields,
        )
        db.session.add(checkout)
        db.session.commit()
        return checkout

    return make


def advance(checkout_id: Any, to: str, **changes: Any) -> int:
    """Move a checkout through its state machine in its own committed transaction."""
    with db.transaction() as session:
        checkout = session.get(CheckoutSession, checkout_id, with_for_update=True)
        assert checkout is not None
        checkout.transition(to, **changes)
        version = checkout.version
    return version


@pytest.fixture()
def listen(redis_client: Any) -> Iterator[Callable[[str], Any]]:
    """A raw Redis subscriber in the test process, to see exactly what was published."""
    pubsubs = []

    def subscribe(channel: str) -> Any:
        pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel)
        pubsub.get_message(timeout=1)  # the subscribe confirmation
        pubsubs.append(pubsub)
        return pubsub

    yield subscribe
    for pubsub in pubsubs:
        pubsub.close()


@pytest.fixture(scope="module")
def web_server(app: Any) -> Iterator[WebServer]:
    """One gunicorn process with a gevent worker, shared by a module's tests.

    It starts after `app`, so it inherits the session's emulator (STRIPE_API_BASE) too."""
    server = start_web_server(
        workers=1, env={**FAST_REALTIME, **UNCAPPED, "METRICS_TOKEN": METRICS_TOKEN}
    )
    yield server
    log = server.log()
    server.stop()
    # Clients that leave, tokens that are refused, streams that end: none of it is an error.
    assert "Traceback" not in log, log[-6000:]


# Short keep-alive and reconnect intervals, so the tests wait for seconds, not minutes.
FAST_REALTIME = {
    "REALTIME_WS_PING_SECONDS": "2",
    "REALTIME_SSE_PING_SECONDS": "2",
    "REALTIME_RECONNECT_BACKOFF_MAX_SECONDS": "0.5",
    "REALTIME_REDIS_PING_SECONDS": "2",
}


# The swarm test holds a thousand streams of one session token; the caps have their own tests.
UNCAPPED = {
    "REALTIME_MAX_STREAMS_PER_TOKEN": "100000",
    "REALTIME_MAX_STREAMS_PER_CUSTOMER": "100000",
}


@pytest.fixture()
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, so it can be stopped and restarted mid-test."""
    server = PrivateRedis().start()
    yield server
    server.stop()
