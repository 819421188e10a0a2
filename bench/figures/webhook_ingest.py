"""Webhook ingest: throughput at saturation and p50/p99 at half of it, against the baseline.

The stack's `POST /stripe/webhooks` and the baseline (`bench/baseline_webhook_app.py`: verify +
one insert + one enqueue) run on the same gunicorn config with no Celery worker consuming, so
both figures are the web tier's own limit. Events are `payment_intent.succeeded` for intents
BillingOS does not know — a type it handles, so it stores and enqueues each one. A sweep of
offered rates gives the throughput-vs-offered-load curve.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from bench.baseline_webhook_app import BASELINE_QUEUE
from bench.figures import BenchContext, FeatureMissing, progress
from bench.loadgen import LoadResult
from bench.results import Figure, not_available
from bench.stack import http
from bench.stats import summarize_latencies
from tests.support.stripe_webhooks import envelope, signature_header

THROUGHPUT = ("webhook_ingest_throughput", "webhook ingest throughput", "events/s")
THROUGHPUT_GOAL = "≥ 90% of baseline and ≥ 900 events/s"
LATENCY = ("webhook_ingest_latency_p99", "webhook ingest latency p99 (at ½ saturation)", "ms")
LATENCY_GOAL = "p99 ≤ 20 ms"
CONNECTIONS = 64
SWEEP = (0.25, 0.5, 0.75, 1.0, 1.25)


def _request(ctx: BenchContext) -> dict[str, Any]:
    return {
        "kind": "stripe_webhook",
        "secret": ctx.stack.webhook_secret,
        "event_type": "payment_intent.succeeded",
        "id_prefix": uuid.uuid4().hex[:10],
        "object": {
            "id": "pi_bench_unknown",
            "object": "payment_intent",
            "amount": 2900,
            "currency": "usd",
            "status": "succeeded",
            "metadata": {},
        },
    }


def check_available(ctx: BenchContext) -> None:
    event = envelope(
        "payment_intent.succeeded",
        {"id": "pi_probe", "object": "payment_intent", "status": "succeeded", "metadata": {}},
        event_id=f"evt_probe_{uuid.uuid4().hex[:12]}",
    )
    payload = json.dumps(event)
    answer = http(
        "POST",
        ctx.base_url + "/stripe/webhooks",
        raw=payload.encode(),
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": signature_header(payload, ctx.stack.webhook_secret),
        },
    )
    if answer.status != 200:
        raise FeatureMissing(f"POST /stripe/webhooks answered {answer.status}")


def _saturate(ctx: BenchContext, port: int) -> LoadResult:
    return ctx.load(
        port,
        mode="closed",
        duration=ctx.durations.saturation,
        connections=CONNECTIONS,
        request=_request(ctx),
        ok_statuses=[200],
    )


def _open(ctx: BenchContext, port: int, rate: float, duration: float) -> LoadResult:
    return ctx.load(
        port,
        mode="open",
        rate=rate,
        duration=duration,
        connections=CONNECTIONS,
        request=_request(ctx),
        ok_statuses=[200],
    )


def measure(ctx: BenchContext) -> list[Figure]:
    try:
        check_available(ctx)
        if ctx.baseline_port is None:
            raise FeatureMissing("the baseline webhook app did not start")
    except FeatureMissing as exc:
        return [
            not_available(*THROUGHPUT, THROUGHPUT_GOAL, str(exc)),
            not_available(*LATENCY, LATENCY_GOAL, str(exc)),
        ]
    ctx.stop_workers()
    try:
        return _measure(ctx)
    finally:
        ctx.purge_queues("celery", BASELINE_QUEUE)
        _empty_inbox(ctx)


def _measure(ctx: BenchContext) -> list[Figure]:
    assert ctx.baseline_port is not None
    progress("webhook ingest: baseline at saturation")
    base_sat = _saturate(ctx, ctx.baseline_port)
    progress(f"  baseline {base_sat.throughput:,.0f} events/s, errors {base_sat.errors}")
    progress("webhook ingest: BillingOS at saturation")
    stack_sat = _saturate(ctx, ctx.web_port)
    progress(f"  BillingOS {stack_sat.throughput:,.0f} events/s, errors {stack_sat.errors}")

    half = max(10.0, stack_sat.throughput / 2)
    progress(f"webhook ingest: latency at {half:,.0f} events/s (½ of BillingOS's saturation)")
    base_lat = _open(ctx, ctx.baseline_port, half, ctx.durations.latency)
    stack_lat = _open(ctx, ctx.web_port, half, ctx.durations.latency)

    sweep: dict[str, list[tuple[float, float]]] = {"BillingOS": [], "baseline": []}
    for share in SWEEP:
        offered = max(10.0, stack_sat.throughput * share)
        for label, port in (("baseline", ctx.baseline_port), ("BillingOS", ctx.web_port)):
            got = _open(ctx, port, offered, ctx.durations.sweep_step)
            sweep[label].append((offered, got.throughput))
        progress(f"  sweep {offered:,.0f}/s offered → BillingOS {sweep['BillingOS'][-1][1]:,.0f}/s")
    ctx.plots["webhook_sweep"] = sweep
    ctx.plots["webhook_latency"] = {
        "BillingOS": stack_lat.latencies_ms,
        "baseline": base_lat.latencies_ms,
    }

    throughput = Figure(
        *THROUGHPUT,
        goal=THROUGHPUT_GOAL,
        value=stack_sat.throughput,
        baseline=base_sat.throughput,
        baseline_label="verify + insert + enqueue",
        loadgen_cpu=stack_sat.loadgen_cores,
        details={
            "connections": CONNECTIONS,
            "seconds": stack_sat.elapsed,
            "errors": stack_sat.errors,
            "baseline_errors": base_sat.errors,
            "baseline_loadgen_cpu": base_sat.loadgen_cores,
        },
    )
    throughput.passed = (
        stack_sat.error_count == 0
        and throughput.value is not None
        and throughput.value >= 900
        and (throughput.ratio or 0) >= 0.9
    )
    figures = [throughput]
    if not stack_lat.latencies_ms or not base_lat.latencies_ms:
        figures.append(not_available(*LATENCY, LATENCY_GOAL, "no successful requests"))
        return figures
    s, b = summarize_latencies(stack_lat.latencies_ms), summarize_latencies(base_lat.latencies_ms)
    latency = Figure(
        *LATENCY,
        goal=LATENCY_GOAL,
        value=s.p99,
        baseline=b.p99,
        baseline_label="verify + insert + enqueue",
        loadgen_cpu=stack_lat.loadgen_cores,
        details={
            "offered_rate": half,
            "BillingOS": s.as_dict(),
            "baseline": b.as_dict(),
            "errors": stack_lat.errors,
        },
    )
    latency.passed = s.p99 <= 20 and stack_lat.error_count == 0
    figures.append(latency)
    return figures


def _empty_inbox(ctx: BenchContext) -> None:
    """The ingest events were never meant to be processed; later figures start from empty."""
    from sqlalchemy import text

    from app.db import db

    with ctx.app.app_context():
        db.session.execute(text("TRUNCATE stripe_events"))
        db.session.commit()
        db.session.remove()
