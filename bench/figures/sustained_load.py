"""Sustained mixed load: webhooks at 80% of ingest saturation for 60 s while 2 workers consume.

Web and workers share the machine, as on one node: the webhook stream (Stripe's example
PaymentIntent, 1.4 KB, as `payment_intent.succeeded` for intents BillingOS does not know, so
each is stored, enqueued, locked, recognised as not ours and marked processed) arrives at 80%
of the ingest saturation `webhook_ingest` measured in the same run, open loop. Meanwhile a
paced trickle of real purchases (an emulator PaymentIntent per checkout, a websocket watching
it) gives webhook → websocket latency under that load, and the inbox backlog (events stored
but not yet processed) is sampled twice a second. Figures: committed effects per second over
the run, the backlog at the end (bounded = it stopped growing), and the webhook → websocket p99.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from bench.figures import BenchContext, FeatureMissing, progress
from bench.figures.webhook_to_client import paced_latencies
from bench.loadgen import LoadResult
from bench.results import Figure, not_available
from bench.stats import summarize_latencies
from tests.support.stripe_fixtures import stripe_fixture_resources

EFFECTS = (
    "sustained_effects",
    "sustained load: committed effects (80% of ingest sat.)",
    "events/s",
)
EFFECTS_GOAL = "= offered rate (no backlog growth)"
BACKLOG = ("sustained_backlog", "sustained load: inbox backlog at the end of 60 s", "events")
BACKLOG_GOAL = "bounded: ≤ 2 s of arrivals"
LATENCY = ("sustained_webhook_to_client_p99", "sustained load: webhook → websocket p99", "ms")
LATENCY_GOAL = "p99 ≤ 100 ms"
SHARE = 0.8


def measure(ctx: BenchContext) -> list[Figure]:
    try:
        if not ctx.ingest_saturation:
            raise FeatureMissing("webhook_ingest did not measure a saturation in this run")
        return _measure(ctx, ctx.ingest_saturation * SHARE)
    except FeatureMissing as exc:
        return [not_available(*k, g, str(exc)) for k, g in KEYS]
    finally:
        ctx.stop_workers()
        ctx.purge_queues("celery")


KEYS = ((EFFECTS, EFFECTS_GOAL), (BACKLOG, BACKLOG_GOAL), (LATENCY, LATENCY_GOAL))


class _InboxSampler(threading.Thread):
    """(seconds since start, pending, processed) every half second, on one held connection."""

    def __init__(self, ctx: BenchContext) -> None:
        super().__init__(daemon=True)
        self.ctx = ctx
        self.samples: list[tuple[float, int, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        import psycopg2

        from app.db import db

        assert db.engine is not None
        connection = psycopg2.connect(
            **db.engine.url.translate_connect_args(username="user", database="dbname")
        )
        connection.autocommit = True
        cursor = connection.cursor()
        query = (
            "SELECT count(*) FILTER (WHERE status = 'pending'),"
            " count(*) FILTER (WHERE status <> 'pending') FROM stripe_events"
        )
        # Events earlier figures left processed are not this run's effects.
        cursor.execute(query)
        _, done_before = cursor.fetchone()
        started = time.monotonic()
        try:
            while not self.stopping.wait(0.5):
                cursor.execute(query)
                pending, done = cursor.fetchone()
                self.samples.append(
                    (time.monotonic() - started, int(pending), int(done) - int(done_before))
                )
        finally:
            connection.close()


def _measure(ctx: BenchContext, rate: float) -> list[Figure]:
    duration = 5.0 if ctx.quick else 60.0
    ctx.start_workers()
    intent = stripe_fixture_resources()["payment_intent"]
    request: dict[str, Any] = {
        "kind": "stripe_webhook",
        "secret": ctx.stack.webhook_secret,
        "id_prefix": uuid.uuid4().hex[:10],
        "templates": [("payment_intent.succeeded", {**intent, "metadata": {}})],
    }
    progress(f"sustained load: {rate:,.0f} webhooks/s for {duration:.0f} s, 2 workers consuming")
    probes = max(5, int(duration / 2))
    checkouts = ctx.create_open_checkouts(probes + 1, with_payment_intent=True)
    sampler = _InboxSampler(ctx)
    result: dict[str, LoadResult] = {}

    def offer() -> None:
        result["load"] = ctx.load(
            ctx.web_port,
            mode="open",
            rate=rate,
            duration=duration,
            connections=64,
            request=request,
            ok_statuses=[200],
        )

    loader = threading.Thread(target=offer, daemon=True)
    sampler.start()
    loader.start()
    latencies = paced_latencies(
        ctx,
        probes,
        ws_port=ctx.web_port,
        post_port=ctx.web_port,
        pause=duration / probes / 2,
        checkouts=checkouts,
        until=time.monotonic() + duration,
    )
    loader.join(duration + 120)
    time.sleep(1.0)
    sampler.stopping.set()
    sampler.join(5)
    load = result.get("load")
    if load is None or not sampler.samples:
        raise FeatureMissing("the load generator or the inbox sampler did not finish")
    samples = sampler.samples
    ctx.plots["sustained_backlog"] = {
        "inbox backlog (pending events)": [(t, p) for t, p, _ in samples],
        "processed events / 10": [(t, d / 10) for t, _, d in samples],
    }
    # Effects per second over the offered window (the last sample inside it).
    inside = [s for s in samples if s[0] <= duration] or samples
    effects_rate = inside[-1][2] / inside[-1][0] if inside[-1][0] > 0 else 0.0
    final_backlog = inside[-1][1]
    progress(
        f"  offered {load.throughput:,.0f}/s accepted, effects {effects_rate:,.0f}/s,"
        f" backlog {final_backlog} at {inside[-1][0]:.0f} s"
    )
    effects = Figure(
        *EFFECTS,
        goal=EFFECTS_GOAL,
        value=effects_rate,
        baseline=load.throughput,
        baseline_label="webhooks accepted/s in the same window",
        loadgen_cpu=load.loadgen_cores,
        details={"offered_rate": rate, "errors": load.errors, "seconds": duration},
    )
    effects.passed = (effects.ratio or 0) >= 0.95
    backlog = Figure(
        *BACKLOG,
        goal=BACKLOG_GOAL,
        value=float(final_backlog),
        baseline=2 * rate,
        baseline_label="2 s of arrivals",
        details={"samples": samples[:: max(1, len(samples) // 120)]},
    )
    backlog.passed = final_backlog <= 2 * rate
    summary = summarize_latencies(latencies) if latencies else None
    latency = Figure(
        *LATENCY,
        goal=LATENCY_GOAL,
        value=summary.p99 if summary else None,
        details={"samples": probes, "summary": summary.as_dict() if summary else None},
    )
    latency.passed = summary is not None and summary.p99 <= 100
    return [effects, backlog, latency]
