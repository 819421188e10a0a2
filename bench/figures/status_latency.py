"""Status latency: a committed checkout change → the websocket client, at 200 updates/s.

The harness process commits real transitions of one open checkout (processing ⇄
requires_action, through `CheckoutSession.transition()`), taking CLOCK_MONOTONIC just before
`commit()`; the committed change publishes itself, and a websocket client in another process
(`bench.wsclient`) stamps each message on arrival. Matching is by `version`. The baseline is a
raw Redis PUBLISH → subscriber round trip at the same rate, subscriber in its own process.

    python -m bench.figures.status_latency subscribe REDIS_URL CHANNEL   (the baseline's client)
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.figures import BenchContext, FeatureMissing, progress
from bench.procs import ROOT
from bench.results import Figure, not_available
from bench.stats import summarize_latencies
from bench.wsclient import WsClients, monotonic_ns

P50 = ("status_latency_p50", "status latency p50 (commit → websocket, 200/s)", "ms")
P99 = ("status_latency_p99", "status latency p99 (commit → websocket, 200/s)", "ms")
P50_GOAL, P99_GOAL = "p50 ≤ 5 ms", "p99 ≤ 50 ms"
RATE = 200.0


def measure(ctx: BenchContext) -> list[Figure]:
    try:
        return _measure(ctx)
    except FeatureMissing as exc:
        return [not_available(*P50, P50_GOAL, str(exc)), not_available(*P99, P99_GOAL, str(exc))]


def _measure(ctx: BenchContext) -> list[Figure]:
    checkout = ctx.create_open_checkouts(1, with_payment_intent=False)[0]
    path = f"/v1/checkout/{checkout['checkout_id']}/ws?token={checkout['token']}"
    clients = WsClients(
        {"host": "127.0.0.1", "port": ctx.web_port, "paths": [path], "count": 1}
    ).start()
    try:
        connected = clients.wait_connected(30)
        if connected["ok"] != 1:
            raise FeatureMissing(f"GET /v1/checkout/{{id}}/ws answered {connected['statuses']}")
        if clients.wait_for(lambda r: r.get("event") == "message", 10) is None:
            raise FeatureMissing("the checkout websocket sent no snapshot")
        progress(
            f"status latency: committing {RATE:.0f} transitions/s for {ctx.durations.latency:.0f} s"
        )
        sent = _commit_transitions(ctx, checkout["checkout_id"], clients)
        clients.wait_count(lambda r: r.get("version") == max(sent), 1, timeout=5)
        received = {r["version"]: r["t"] for r in clients.records if r.get("event") == "message"}
    finally:
        clients.stop()
    latencies = [(received[v] - t0) / 1e6 for v, t0 in sent.items() if v in received]
    if not latencies:
        raise FeatureMissing("no committed change reached the websocket client")
    progress(f"status latency baseline: Redis PUBLISH → subscriber at {RATE:.0f}/s")
    baseline = redis_round_trips(ctx.stack.redis_url, RATE, ctx.durations.latency)
    s, b = summarize_latencies(latencies), summarize_latencies(baseline)
    ctx.plots["status_latency"] = {"BillingOS": latencies, "Redis PUBLISH": baseline}
    details = {
        "updates": len(sent),
        "received": len(latencies),
        "lost": len(sent) - len(latencies),
        "BillingOS": s.as_dict(),
        "baseline": b.as_dict(),
    }
    p50 = Figure(*P50, goal=P50_GOAL, value=s.p50, baseline=b.p50, details=details)
    p50.baseline_label = "Redis PUBLISH → subscriber"
    p50.passed = s.p50 <= 5
    p99 = Figure(*P99, goal=P99_GOAL, value=s.p99, baseline=b.p99, details=details)
    p99.baseline_label = "Redis PUBLISH → subscriber"
    p99.passed = s.p99 <= 50
    return [p50, p99]


def _commit_transitions(ctx: BenchContext, checkout_id: str, clients: WsClients) -> dict[int, int]:
    from sqlalchemy import select

    from app.db import db
    from models import CheckoutSession

    sent: dict[int, int] = {}
    interval = 1.0 / RATE
    count = int(RATE * ctx.durations.latency)
    with ctx.app.app_context():
        start = time.perf_counter()
        for i in range(count):
            pause = start + i * interval - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            session = db.session
            checkout = session.execute(
                select(CheckoutSession)
                .where(CheckoutSession.id == uuid.UUID(checkout_id))
                .with_for_update()
            ).scalar_one()
            checkout.transition(
                "processing" if checkout.status != "processing" else "requires_action"
            )
            version = checkout.version
            t0 = monotonic_ns()
            session.commit()
            sent[version] = t0
            if i == 0 and clients.wait_for(_has_version(version), 5) is None:
                raise FeatureMissing("a committed checkout change was not published within 5 s")
        db.session.remove()
    return sent


def _has_version(version: int) -> Callable[[dict[str, Any]], bool]:
    return lambda record: record.get("version") == version


def redis_round_trips(redis_url: str, rate: float, seconds: float) -> list[float]:
    """PUBLISH from here, receive in a subscriber process; milliseconds per message."""
    import redis

    channel = f"bench:status:{uuid.uuid4().hex[:8]}"
    sub = subprocess.Popen(
        [sys.executable, "-m", "bench.figures.status_latency", "subscribe", redis_url, channel],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sub.stdout is not None
    if sub.stdout.readline().strip() != "subscribed":
        sub.kill()
        raise RuntimeError("baseline subscriber did not start")
    received: dict[int, int] = {}

    def read() -> None:
        assert sub.stdout is not None
        for line in sub.stdout:
            seq, t = line.split()
            received[int(seq)] = int(t)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    client = redis.Redis.from_url(redis_url)
    sent: dict[int, int] = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        pause = start + i * interval - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent[i] = monotonic_ns()
        client.publish(channel, json.dumps({"seq": i}))
    time.sleep(0.3)
    sub.terminate()
    sub.wait(timeout=5)
    reader.join(timeout=5)
    return [(received[i] - t0) / 1e6 for i, t0 in sent.items() if i in received]


def _subscribe(redis_url: str, channel: str) -> None:
    import redis

    pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    print("subscribed", flush=True)
    for message in pubsub.listen():
        t = monotonic_ns()
        seq = json.loads(message["data"])["seq"]
        print(seq, t, flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["subscribe"]:
    _subscribe(sys.argv[2], sys.argv[3])
