"""Webhook ingest: throughput at saturation and p50/p99 at half of it, against the raw stack.

The stack's `POST /stripe/webhooks` and two baselines run on the same gunicorn config with no
Celery worker consuming, so every figure is the web tier's own limit:

- the baseline the goals are judged against is the raw stack (`bench/raw_webhook_app.py`):
  HMAC with `hmac`/`hashlib`, `json.loads`, one `INSERT … ON CONFLICT DO NOTHING`, one Redis
  `LPUSH` of the event id — the work no implementation can skip;
- the second column is the earlier baseline (`bench/baseline_webhook_app.py`: Flask,
  `stripe.Webhook.construct_event`, the insert, Celery's `send_task`).

Events are real shapes and sizes: Stripe's own example invoice, charge and Checkout Session
(tests/fixtures/stripe/fixtures3.json, 3.3–4.0 KB signed) as `invoice.paid`, `charge.refunded`
and `checkout.session.completed` — types BillingOS handles, so it stores and enqueues each one.
Latency is taken at ½ of each server's own saturation, measured in the same run. A sweep of
offered rates gives the throughput-vs-offered-load curve.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from bench.baseline_webhook_app import BASELINE_QUEUE
from bench.figures import BenchContext, FeatureMissing, progress
from bench.loadgen import LoadResult
from bench.raw_webhook_app import RAW_QUEUE
from bench.results import Figure, not_available
from bench.stack import http
from bench.stats import summarize_latencies
from tests.support.stripe_fixtures import stripe_fixture_resources
from tests.support.stripe_webhooks import envelope, signature_header

THROUGHPUT = ("webhook_ingest_throughput", "webhook ingest throughput", "events/s")
THROUGHPUT_GOAL = "≥ 90% of the raw stack"
LATENCY = (
    "webhook_ingest_latency_p99",
    "webhook ingest latency p99 (each at ½ its own saturation)",
    "ms",
)
LATENCY_GOAL = "p99 ≤ 20 ms"
CONNECTIONS = 64
SWEEP = (0.25, 0.5, 0.75, 1.0, 1.25)


# Stripe's example objects as the events BillingOS receives most (each 3.3–4.0 KB signed).
EVENT_TEMPLATES = (
    ("invoice.paid", "invoice"),
    ("charge.refunded", "charge"),
    ("checkout.session.completed", "checkout.session"),
)
RAW_LABEL = "raw stack: hmac + json.loads + insert + LPUSH"
LIBRARY_LABEL = "Flask + stripe lib + insert + send_task"


def event_templates() -> list[tuple[str, dict[str, Any]]]:
    resources = stripe_fixture_resources()
    return [(event_type, resources[name]) for event_type, name in EVENT_TEMPLATES]


def _request(ctx: BenchContext) -> dict[str, Any]:
    return {
        "kind": "stripe_webhook",
        "secret": ctx.stack.webhook_secret,
        "id_prefix": uuid.uuid4().hex[:10],
        "templates": event_templates(),
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
        if ctx.raw_port is None:
            raise FeatureMissing("the raw-stack webhook baseline did not start")
    except FeatureMissing as exc:
        return [
            not_available(*THROUGHPUT, THROUGHPUT_GOAL, str(exc)),
            not_available(*LATENCY, LATENCY_GOAL, str(exc)),
        ]
    ctx.stop_workers()
    try:
        return _measure(ctx)
    finally:
        ctx.purge_queues("celery", BASELINE_QUEUE, RAW_QUEUE)
        _empty_inbox(ctx)
        for server in ctx.ingest_baselines:
            server.stop()


def _measure(ctx: BenchContext) -> list[Figure]:
    assert ctx.raw_port is not None
    progress("webhook ingest: raw stack at saturation")
    raw_sat = _saturate(ctx, ctx.raw_port)
    progress(f"  raw stack {raw_sat.throughput:,.0f} events/s, errors {raw_sat.errors}")
    library_sat = None
    if ctx.baseline_port is not None:
        progress("webhook ingest: library baseline at saturation")
        library_sat = _saturate(ctx, ctx.baseline_port)
        progress(f"  library baseline {library_sat.throughput:,.0f} events/s")
    progress("webhook ingest: BillingOS at saturation")
    stack_sat = _saturate(ctx, ctx.web_port)
    progress(f"  BillingOS {stack_sat.throughput:,.0f} events/s, errors {stack_sat.errors}")

    # Each at ½ of its own saturation: a slow window of the machine moves both alike.
    half, raw_half = (max(10.0, r.throughput / 2) for r in (stack_sat, raw_sat))
    progress(f"webhook ingest: latency at {half:,.0f}/s and the raw stack at {raw_half:,.0f}/s")
    base_lat = _open(ctx, ctx.raw_port, raw_half, ctx.durations.latency)
    stack_lat = _open(ctx, ctx.web_port, half, ctx.durations.latency)

    sweep: dict[str, list[tuple[float, float]]] = {"BillingOS": [], "raw stack": []}
    for share in SWEEP:
        offered = max(10.0, raw_sat.throughput * share)
        for label, port in (("raw stack", ctx.raw_port), ("BillingOS", ctx.web_port)):
            got = _open(ctx, port, offered, ctx.durations.sweep_step)
            sweep[label].append((offered, got.throughput))
        progress(f"  sweep {offered:,.0f}/s offered → BillingOS {sweep['BillingOS'][-1][1]:,.0f}/s")
    ctx.plots["webhook_sweep"] = sweep
    ctx.plots["webhook_latency"] = {
        "BillingOS": stack_lat.latencies_ms,
        "raw stack": base_lat.latencies_ms,
    }
    ctx.ingest_saturation = stack_sat.throughput

    throughput = Figure(
        *THROUGHPUT,
        goal=THROUGHPUT_GOAL,
        value=stack_sat.throughput,
        baseline=raw_sat.throughput,
        baseline_label=RAW_LABEL,
        second_baseline=library_sat.throughput if library_sat else None,
        second_baseline_label=LIBRARY_LABEL,
        loadgen_cpu=stack_sat.loadgen_cores,
        details={
            "connections": CONNECTIONS,
            "seconds": stack_sat.elapsed,
            "errors": stack_sat.errors,
            "baseline_errors": raw_sat.errors,
            "baseline_loadgen_cpu": raw_sat.loadgen_cores,
            "events": [event_type for event_type, _ in EVENT_TEMPLATES],
        },
    )
    throughput.passed = stack_sat.error_count == 0 and (throughput.ratio or 0) >= 0.9
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
        baseline_label=RAW_LABEL,
        loadgen_cpu=stack_lat.loadgen_cores,
        details={
            "offered_rate": half,
            "baseline_offered_rate": raw_half,
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
