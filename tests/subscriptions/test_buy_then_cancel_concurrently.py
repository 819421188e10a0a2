"""Fifty buyers buy a plan and cancel it right away, all at once, while Stripe's webhooks flow.

A real gunicorn receives the API calls and the emulator's webhook deliveries, real Celery
workers process the checkouts and the events, and every Stripe call of theirs takes Stripe's
own couple of hundred milliseconds (a latency proxy in front of the emulator). The cancel
route and the webhook worker touch the same checkout and subscription rows at the same moment;
every answer must be a success, and every row must end as Stripe has it. (The exact cycle that
made this a 500 `deadlock detected` is replayed deterministically in test_locking.py.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app import settings_of
from app.db import db
from models import CheckoutSession, StripeEvent, Subscription
from models.stripe_event import PENDING
from tests.factories import Buyer, make_buyer
from tests.support.latency_proxy import LatencyProxy
from tests.support.processes import wait_until
from tests.support.server import WebServer, start_web_server

BUYERS = 50
# Round trip to Stripe from a server near it.
STRIPE_LATENCY_SECONDS = 0.2
FLOW_TIMEOUT_SECONDS = 180


@dataclass
class Flow:
    buyer: Buyer
    at_period_end: bool
    statuses: list[tuple[str, int]] = field(default_factory=list)
    subscription_id: str | None = None
    canceled: dict[str, Any] | None = None


def _call(flow: Flow, http: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
    response = http.request(method, url, headers=flow.buyer.headers, timeout=60, **kwargs)
    flow.statuses.append((f"{method} {url.rsplit('/v1/', 1)[-1]}", response.status_code))
    return response


def _buy_and_cancel(server: WebServer, price_id: str, flow: Flow) -> Flow:
    http = requests.Session()
    base = f"{server.url}/v1"
    created = http.post(
        f"{base}/checkout/create",
        json={"price_id": price_id},
        headers={**flow.buyer.headers, "Prefer": "wait=10"},
        timeout=60,
    )
    flow.statuses.append(("POST checkout/create", created.status_code))
    if created.status_code not in (201, 202):  # 202: still pending when the wait ran out
        return flow
    checkout = created.json()

    def status() -> dict[str, Any] | None:
        response = _call(flow, http, "GET", f"{base}/checkout/{checkout['id']}/status")
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 else None

    opened = wait_until(
        lambda: (s := status()) and s["status"] != "pending" and s, 120, 0.2, "open"
    )
    assert opened["status"] == "open", opened
    confirm = _call(
        flow,
        http,
        "POST",
        f"{base}/checkout/{opened['client_secret']}/confirm",
        json={"payment_method_id": "pm_card_visa"},
    )
    if confirm.status_code != 202:
        return flow
    paid = wait_until(
        lambda: (s := status()) and s["status"] == "succeeded" and s, 120, 0.2, "succeeded"
    )
    flow.subscription_id = paid["subscription"]["id"]
    # Right away: the webhooks of the purchase (invoice.paid, subscription.updated, ...) are
    # still arriving and being processed.
    canceled = _call(
        flow,
        http,
        "POST",
        f"{base}/customer/subscriptions/{flow.subscription_id}/cancel",
        json={"at_period_end": flow.at_period_end},
    )
    if canceled.status_code == 200:
        flow.canceled = canceled.json()
    return flow


def _inbox_settled(emulator: Any) -> bool:
    delivered = all(
        delivery["status"] == "succeeded"
        for event in emulator.events()
        for delivery in event["deliveries"]
    )
    db.session.expire_all()
    pending = db.session.execute(
        select(StripeEvent.id).where(StripeEvent.status == PENDING)
    ).first()
    db.session.rollback()
    return delivered and pending is None


@pytest.mark.timeout(600)
def test_fifty_buy_then_cancel_at_once_no_5xx_and_stripes_final_state(
    app, merchant, catalog, stripe_emulator, start_worker
):
    settings = settings_of(app)
    proxy = LatencyProxy(stripe_emulator.url, STRIPE_LATENCY_SECONDS).start()
    slow_stripe = {"STRIPE_API_BASE": proxy.url}
    server = start_web_server(
        workers=1,
        env={
            "STRIPE_WEBHOOK_SECRET": settings.stripe_webhook_secret,
            "ACCESS_LOG": "0",
            **slow_stripe,
        },
    )
    try:
        stripe_emulator.register_webhook(
            server.url + "/stripe/webhooks", settings.stripe_webhook_secret
        )
        # Stripe's webhooks trail its API answers, and arrive in no particular order: the
        # purchase's events are still being applied when the buyer cancels.
        stripe_emulator.webhook_chaos(delay_ms=300, shuffle=True, duplicate_rate=0.2)
        start_worker(concurrency=3, env=slow_stripe)
        flows = [
            Flow(make_buyer(merchant, external_id=f"user_{i}"), at_period_end=i % 2 == 0)
            for i in range(BUYERS)
        ]
        price_id = str(catalog.monthly.id)
        with ThreadPoolExecutor(max_workers=BUYERS) as pool:
            done = list(pool.map(lambda f: _buy_and_cancel(server, price_id, f), flows))

        server_errors = [(s, code) for f in done for s, code in f.statuses if code >= 500]
        assert server_errors == [], (server_errors[:10], server.log()[-4000:])
        unfinished = [f.statuses[-3:] for f in done if f.canceled is None]
        assert unfinished == [], unfinished
        for flow in done:
            assert flow.canceled is not None
            if flow.at_period_end:
                assert flow.canceled["status"] == "active", flow.canceled
                assert flow.canceled["cancel_at_period_end"] is True, flow.canceled
            else:
                assert flow.canceled["status"] == "canceled", flow.canceled

        wait_until(lambda: _inbox_settled(stripe_emulator), FLOW_TIMEOUT_SECONDS, 0.5, "inbox")
        stripe = stripe_emulator.client()
        db.session.expire_all()
        rows = {
            str(row.id): row for row in db.session.execute(select(Subscription)).scalars().all()
        }
        assert len(rows) == BUYERS
        for flow in done:
            assert flow.subscription_id is not None
            row = rows[flow.subscription_id]
            in_stripe = stripe.v1.subscriptions.retrieve(row.stripe_subscription_id)
            assert (row.status, row.cancel_at_period_end) == (
                in_stripe.status,
                in_stripe.cancel_at_period_end,
            ), flow.subscription_id
            expected = ("active", True) if flow.at_period_end else ("canceled", False)
            assert (row.status, row.cancel_at_period_end) == expected
        checkout_statuses = set(db.session.execute(select(CheckoutSession.status)).scalars())
        assert checkout_statuses == {"succeeded"}
        failed_events = db.session.execute(
            select(StripeEvent.type, StripeEvent.last_error).where(StripeEvent.status == "failed")
        ).all()
        assert failed_events == []
    finally:
        log = server.log()
        server.stop()
        proxy.stop()
    assert "deadlock detected" not in log
