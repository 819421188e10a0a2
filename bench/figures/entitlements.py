"""Entitlement reads: `GET /v1/customer/entitlements` throughput and p99, against `/healthz`.

Closed loop at saturation for the throughput, then open loop at half of it for the p99, the same
for the baseline (`GET /healthz` on the same server), rotating through the seeded buyers.
"""

from __future__ import annotations

from bench.figures import BenchContext, FeatureMissing, progress
from bench.results import Figure, not_available
from bench.stats import summarize_latencies

THROUGHPUT = ("entitlements_throughput", "entitlement reads throughput", "req/s")
LATENCY = ("entitlements_p99", "entitlement reads p99 (at ½ saturation)", "ms")
THROUGHPUT_GOAL, LATENCY_GOAL = "≥ 2,000 req/s", "p99 ≤ 10 ms"
CONNECTIONS = 32
PATH = "/v1/customer/entitlements"


def measure(ctx: BenchContext) -> list[Figure]:
    try:
        return _measure(ctx)
    except FeatureMissing as exc:
        return [
            not_available(*THROUGHPUT, THROUGHPUT_GOAL, str(exc)),
            not_available(*LATENCY, LATENCY_GOAL, str(exc)),
        ]


def _measure(ctx: BenchContext) -> list[Figure]:
    ctx.require_endpoint("GET", PATH, ok=(200,), headers={"Authorization": ctx.buyer_auth()[0]})
    reads = {"kind": "static", "path": PATH, "authorizations": ctx.buyer_auth()}
    health = {"kind": "static", "path": "/healthz"}
    progress("entitlements: saturation (BillingOS, then /healthz)")
    common = {"connections": CONNECTIONS, "ok_statuses": [200]}
    sat = ctx.load(
        ctx.web_port, mode="closed", duration=ctx.durations.saturation, request=reads, **common
    )
    base_sat = ctx.load(
        ctx.web_port, mode="closed", duration=ctx.durations.saturation, request=health, **common
    )
    half = max(10.0, sat.throughput / 2)
    progress(f"entitlements: latency at {half:,.0f} req/s")
    lat = ctx.load(
        ctx.web_port,
        mode="open",
        rate=half,
        duration=ctx.durations.latency,
        request=reads,
        **common,
    )
    base_lat = ctx.load(
        ctx.web_port,
        mode="open",
        rate=half,
        duration=ctx.durations.latency,
        request=health,
        **common,
    )
    if not lat.latencies_ms:
        raise FeatureMissing(f"no successful read under load ({lat.errors})")
    s, b = summarize_latencies(lat.latencies_ms), summarize_latencies(base_lat.latencies_ms)
    ctx.plots["entitlements"] = {"BillingOS": lat.latencies_ms, "/healthz": base_lat.latencies_ms}
    throughput = Figure(
        *THROUGHPUT,
        goal=THROUGHPUT_GOAL,
        value=sat.throughput,
        baseline=base_sat.throughput,
        baseline_label="GET /healthz",
        loadgen_cpu=sat.loadgen_cores,
        details={"errors": sat.errors, "connections": CONNECTIONS},
    )
    throughput.passed = sat.throughput >= 2000 and sat.error_count == 0
    latency = Figure(
        *LATENCY,
        goal=LATENCY_GOAL,
        value=s.p99,
        baseline=b.p99,
        baseline_label="GET /healthz",
        loadgen_cpu=lat.loadgen_cores,
        details={"offered_rate": half, "BillingOS": s.as_dict(), "baseline": b.as_dict()},
    )
    latency.passed = s.p99 <= 10 and lat.error_count == 0
    return [throughput, latency]
