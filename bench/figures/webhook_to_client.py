"""Webhook → client: Stripe's `payment_intent.succeeded` POST → the buyer's websocket says so.

For each of K open checkouts (a real emulator PaymentIntent that has succeeded, as after the
buyer confirmed with Stripe.js) a websocket client is connected; the harness POSTs the signed
event on a kept-alive connection, taking CLOCK_MONOTONIC just before sending, and the client
stamps the first message whose status is `succeeded`. The whole path is measured: verify, store,
enqueue after commit, a worker processes the event and commits, publish, fan-out, websocket.
Checkouts are paced (one at a time), so this is the latency of a quiet system, not a queue.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from typing import Any

from bench.figures import BenchContext, FeatureMissing, progress
from bench.results import Figure, not_available
from bench.stats import summarize_latencies
from bench.wsclient import WsClients, monotonic_ns
from tests.support.stripe_webhooks import envelope, signature_header

KEY = ("webhook_to_client_p99", "webhook → client p99 (event POST → websocket `succeeded`)", "ms")
GOAL = "p99 ≤ 100 ms"


def paced_latencies(
    ctx: BenchContext,
    samples: int,
    *,
    ws_port: int,
    post_port: int,
    pause: float = 0.02,
    checkouts: list[dict[str, Any]] | None = None,
    until: float | None = None,
) -> list[float]:
    """Webhook POST (to `post_port`) → `succeeded` on a websocket (on `ws_port`), in ms.

    One checkout at a time; the workers must be running. One more checkout than measured: the
    first event warms a freshly started worker (imports, connection pools) and is not counted.
    """
    if checkouts is None:
        checkouts = ctx.create_open_checkouts(samples + 1, with_payment_intent=True)
    paths = [f"/v1/checkout/{c['checkout_id']}/ws?token={c['token']}" for c in checkouts]
    clients = WsClients(
        {"host": "127.0.0.1", "port": ws_port, "paths": paths, "count": len(paths)}
    ).start()
    latencies: list[float] = []
    try:
        connected = clients.wait_connected(60)
        if connected["ok"] != len(paths):
            raise FeatureMissing(f"GET /v1/checkout/{{id}}/ws answered {connected['statuses']}")
        conn = http.client.HTTPConnection("127.0.0.1", post_port, timeout=10)
        for index, checkout in enumerate(checkouts):
            if until is not None and time.monotonic() > until:
                break  # no new probe after the caller's window (`until`, monotonic seconds)
            event = envelope(
                "payment_intent.succeeded",
                checkout["payment_intent"],
                event_id=f"evt_w2c_{uuid.uuid4().hex[:16]}",
            )
            payload = json.dumps(event)
            headers = {
                "Content-Type": "application/json",
                "Stripe-Signature": signature_header(payload, ctx.stack.webhook_secret),
            }
            t0 = monotonic_ns()
            conn.request("POST", "/stripe/webhooks", payload, headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise FeatureMissing(f"POST /stripe/webhooks answered {response.status}")
            record = clients.wait_for(
                lambda r, i=index: r.get("c") == i and r.get("status") == "succeeded",  # type: ignore[misc]
                timeout=30,
            )
            if record is None:
                if not latencies and index > 0:
                    raise FeatureMissing("no websocket said `succeeded` within 30 s of the event")
                continue
            if index > 0:
                latencies.append((record["t"] - t0) / 1e6)
            time.sleep(pause)
        conn.close()
    finally:
        clients.stop()
    return latencies


def measure(ctx: BenchContext) -> list[Figure]:
    try:
        return [_measure(ctx)]
    except FeatureMissing as exc:
        return [not_available(*KEY, GOAL, str(exc))]
    finally:
        ctx.stop_workers()


def _measure(ctx: BenchContext) -> Figure:
    samples = min(200, max(10, ctx.durations.samples // 10))
    ctx.start_workers()
    progress(f"webhook → client: {samples} checkouts, one at a time")
    latencies = paced_latencies(ctx, samples, ws_port=ctx.web_port, post_port=ctx.web_port)
    summary = summarize_latencies(latencies)
    ctx.plots["webhook_to_client"] = {"BillingOS": latencies}
    figure = Figure(
        *KEY,
        goal=GOAL,
        value=summary.p99,
        details={"samples": samples, "received": len(latencies), "summary": summary.as_dict()},
    )
    figure.passed = len(latencies) == samples and summary.p99 <= 100
    return figure
