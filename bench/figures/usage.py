"""Usage metering: `track-usage` against a minimal same-stack baseline, and the feature reads
(`check`, `usage-metrics`) against the entitlement read of the same run.

The track baseline (`POST /baseline/track-usage` on the baseline app) does the session-token
cache lookup and one idempotent ledger insert, nothing else. The reads are compared with
`GET /v1/customer/entitlements` measured here too. Every seeded buyer holds a subscription to
a plan with an unlimited `api_calls` quota, so the reads go through grants and aggregates.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from bench.figures import BenchContext, FeatureMissing, progress
from bench.results import Figure, not_available
from bench.stats import summarize_latencies

TRACK = ("usage_track_throughput", "track-usage throughput", "req/s")
TRACK_P99 = ("usage_track_p99", "track-usage p99 (at ½ saturation)", "ms")
CHECK = ("usage_check_throughput", "feature check (quota) throughput", "req/s")
METRICS = ("usage_metrics_throughput", "usage-metrics throughput", "req/s")
READ_P99 = ("usage_reads_p99", "check / usage-metrics p99 (at ½ saturation)", "ms")
TRACK_GOAL, TRACK_P99_GOAL = "≥ 0.9× baseline", "p99 ≤ 15 ms"
READ_GOAL, READ_P99_GOAL = "≥ 0.8× entitlement reads", "p99 ≤ 10 ms"
KEYS = [
    (*TRACK, TRACK_GOAL),
    (*TRACK_P99, TRACK_P99_GOAL),
    (*CHECK, READ_GOAL),
    (*METRICS, READ_GOAL),
    (*READ_P99, READ_P99_GOAL),
]
CONNECTIONS = 32
FEATURE = "api_calls"


def measure(ctx: BenchContext) -> list[Figure]:
    try:
        return _measure(ctx)
    except FeatureMissing as exc:
        return [not_available(*key, str(exc)) for key in KEYS]


def _grant_quota(ctx: BenchContext) -> None:
    """A metered plan, subscribed to by every seeded buyer (rows as the webhooks leave them)."""
    from app.catalog import service as catalog
    from app.catalog.schemas import ProductCreate
    from app.db import db
    from app.entitlements.service import recompute_entitlements
    from models import Subscription
    from models.base import utcnow

    with ctx.app.app_context():
        product = catalog.create_product(
            uuid.UUID(ctx.seed.organization_id),
            ProductCreate.model_validate(
                {
                    "name": "Metered",
                    "features": [
                        {"key": FEATURE, "name": "API calls", "type": "usage_quota", "limit": -1}
                    ],
                    "prices": [{"amount": 900, "currency": "usd", "interval": "month"}],
                }
            ),
        )
        now = utcnow()
        for buyer in ctx.seed.buyers:
            db.session.add(
                Subscription(
                    organization_id=product.organization_id,
                    customer_id=uuid.UUID(buyer["customer_id"]),
                    product_id=product.id,
                    price_id=product.prices[0].id,
                    status="active",
                    current_period_start=now,
                    current_period_end=now + timedelta(days=30),
                )
            )
            db.session.flush()
            recompute_entitlements(db.session(), uuid.UUID(buyer["customer_id"]))
        db.session.commit()
        db.session.remove()


def _saturate(ctx: BenchContext, port: int, request: dict[str, Any]) -> Any:
    return ctx.load(
        port,
        mode="closed",
        duration=ctx.durations.saturation,
        request=request,
        connections=CONNECTIONS,
        ok_statuses=[200],
    )


def _latency(ctx: BenchContext, port: int, request: dict[str, Any], rate: float) -> Any:
    return ctx.load(
        port,
        mode="open",
        rate=rate,
        duration=ctx.durations.latency,
        request=request,
        connections=CONNECTIONS,
        ok_statuses=[200],
    )


def _measure(ctx: BenchContext) -> list[Figure]:
    auths = ctx.buyer_auth()
    ctx.require_endpoint(
        "GET",
        f"/v1/features/usage-metrics?feature_key={FEATURE}",
        ok=(200,),
        headers={"Authorization": auths[0]},
    )
    if ctx.baseline_port is None:
        raise FeatureMissing("the baseline app did not start")
    _grant_quota(ctx)
    # Every buyer's token once through the real auth, so both sides start from a warm cache.
    for auth in auths:
        ctx.require_endpoint(
            "GET",
            f"/v1/features/check?feature_key={FEATURE}",
            ok=(200,),
            headers={"Authorization": auth},
        )
    track = {
        "kind": "track_usage",
        "path": "/v1/features/track-usage",
        "feature_key": FEATURE,
        "authorizations": auths,
    }
    baseline = {**track, "path": "/baseline/track-usage"}
    check = {
        "kind": "static",
        "path": f"/v1/features/check?feature_key={FEATURE}",
        "authorizations": auths,
    }
    usage = {"kind": "static", "path": "/v1/features/usage-metrics", "authorizations": auths}
    entitlements = {"kind": "static", "path": "/v1/customer/entitlements", "authorizations": auths}

    progress("usage: track-usage saturation (BillingOS, then the baseline)")
    sat = _saturate(ctx, ctx.web_port, track)
    base_sat = _saturate(ctx, ctx.baseline_port, baseline)
    half = max(10.0, sat.throughput / 2)
    progress(f"usage: track-usage latency at {half:,.0f} req/s")
    lat = _latency(ctx, ctx.web_port, track, half)
    base_lat = _latency(ctx, ctx.baseline_port, baseline, half)

    progress("usage: reads saturation (check, usage-metrics, entitlements)")
    check_sat = _saturate(ctx, ctx.web_port, check)
    usage_sat = _saturate(ctx, ctx.web_port, usage)
    ent_sat = _saturate(ctx, ctx.web_port, entitlements)
    read_half = max(10.0, min(check_sat.throughput, usage_sat.throughput) / 2)
    check_lat = _latency(ctx, ctx.web_port, check, read_half)
    usage_lat = _latency(ctx, ctx.web_port, usage, read_half)
    ent_lat = _latency(ctx, ctx.web_port, entitlements, read_half)
    if not lat.latencies_ms or not check_lat.latencies_ms or not usage_lat.latencies_ms:
        raise FeatureMissing(f"no successful request under load ({lat.errors})")

    s, b = summarize_latencies(lat.latencies_ms), summarize_latencies(base_lat.latencies_ms)
    reads = summarize_latencies(check_lat.latencies_ms + usage_lat.latencies_ms)
    ent = summarize_latencies(ent_lat.latencies_ms)
    ctx.plots["usage_track"] = {"BillingOS": lat.latencies_ms, "baseline": base_lat.latencies_ms}

    track_fig = Figure(
        *TRACK,
        goal=TRACK_GOAL,
        value=sat.throughput,
        baseline=base_sat.throughput,
        baseline_label="auth-cache lookup + 1 idempotent insert",
        loadgen_cpu=sat.loadgen_cores,
        details={"errors": sat.errors, "baseline_errors": base_sat.errors},
    )
    track_fig.passed = (
        base_sat.throughput > 0
        and sat.throughput >= 0.9 * base_sat.throughput
        and sat.error_count == 0
    )
    track_p99 = Figure(
        *TRACK_P99,
        goal=TRACK_P99_GOAL,
        value=s.p99,
        baseline=b.p99,
        baseline_label="same baseline",
        loadgen_cpu=lat.loadgen_cores,
        details={"offered_rate": half, "BillingOS": s.as_dict(), "baseline": b.as_dict()},
    )
    track_p99.passed = s.p99 <= 15 and lat.error_count == 0
    figures = [track_fig, track_p99]
    for key, result in ((CHECK, check_sat), (METRICS, usage_sat)):
        figure = Figure(
            *key,
            goal=READ_GOAL,
            value=result.throughput,
            baseline=ent_sat.throughput,
            baseline_label="GET /v1/customer/entitlements",
            loadgen_cpu=result.loadgen_cores,
            details={"errors": result.errors},
        )
        figure.passed = (
            ent_sat.throughput > 0
            and result.throughput >= 0.8 * ent_sat.throughput
            and result.error_count == 0
        )
        figures.append(figure)
    read_p99 = Figure(
        *READ_P99,
        goal=READ_P99_GOAL,
        value=reads.p99,
        baseline=ent.p99,
        baseline_label="entitlement reads p99",
        details={
            "offered_rate": read_half,
            "reads": reads.as_dict(),
            "entitlements": ent.as_dict(),
        },
    )
    read_p99.passed = reads.p99 <= 10 and check_lat.error_count == 0 and usage_lat.error_count == 0
    figures.append(read_p99)
    return figures
