"""Checkout create overhead: `POST /v1/checkout/create` → 202 at 200 req/s, Stripe excluded.

Open loop at a fixed 200 requests/s, each with a fresh `Idempotency-Key`, rotating through the
seeded buyers. No worker runs, so no Stripe call is made while measuring: the figure is the
API's own cost (validate, insert a `pending` checkout, enqueue after commit). The baseline is
`GET /healthz` on the same server at the same rate.
"""

from __future__ import annotations

from bench.figures import BenchContext, FeatureMissing, progress
from bench.results import Figure, not_available
from bench.stats import summarize_latencies

KEY = ("checkout_create_p99", "checkout create overhead p99 (200 req/s)", "ms")
GOAL = "p99 ≤ 20 ms"
RATE = 200.0


def measure(ctx: BenchContext) -> list[Figure]:
    try:
        return [_measure(ctx)]
    except FeatureMissing as exc:
        return [not_available(*KEY, GOAL, str(exc))]
    finally:
        ctx.purge_queues("celery")


def _measure(ctx: BenchContext) -> Figure:
    if ctx.seed.one_time_price_id is None:
        raise FeatureMissing("no seeded price")
    ctx.stop_workers()
    ctx.require_endpoint(
        "POST",
        "/v1/checkout/create",
        ok=(200, 201, 202),
        body={"price_id": ctx.seed.one_time_price_id},
        headers={"Authorization": ctx.buyer_auth()[0], "Idempotency-Key": "bench-probe"},
    )
    progress(f"checkout create: {RATE:.0f} req/s for {ctx.durations.latency:.0f} s")
    stack = ctx.load(
        ctx.web_port,
        mode="open",
        rate=RATE,
        duration=ctx.durations.latency,
        connections=32,
        request={
            "kind": "checkout_create",
            "tokens": [b["token"] for b in ctx.seed.buyers],
            "price_id": ctx.seed.one_time_price_id,
        },
        ok_statuses=[202, 201],
    )
    baseline = ctx.load(
        ctx.web_port,
        mode="open",
        rate=RATE,
        duration=ctx.durations.latency,
        connections=32,
        request={"kind": "static", "path": "/healthz"},
        ok_statuses=[200],
    )
    if not stack.latencies_ms:
        raise FeatureMissing(f"no checkout created under load ({stack.errors})")
    s, b = summarize_latencies(stack.latencies_ms), summarize_latencies(baseline.latencies_ms)
    ctx.plots["checkout_create"] = {
        "BillingOS": stack.latencies_ms,
        "/healthz": baseline.latencies_ms,
    }
    figure = Figure(
        *KEY,
        goal=GOAL,
        value=s.p99,
        baseline=b.p99,
        baseline_label="GET /healthz",
        loadgen_cpu=stack.loadgen_cores,
        details={"BillingOS": s.as_dict(), "baseline": b.as_dict(), "errors": stack.errors},
    )
    figure.passed = s.p99 <= 20 and stack.error_count == 0
    return figure
