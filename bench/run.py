"""`make bench`: start the stack as the Procfile does, measure every figure beside its baseline.

    python -m bench.run [--quick] [--only webhook_ingest,entitlements]

Environment: BENCH_DATABASE_URL (default postgresql+psycopg2://postgres@127.0.0.1:5432/
billingos_bench, dropped and re-created), BENCH_REDIS_URL (default redis://127.0.0.1:6379/12,
flushed), BENCH_QUICK=1 (tiny durations: proves the harness runs, numbers mean little),
BENCH_LOADGEN_PROCESSES (default 2), BENCH_KEEP_LOGS=1 (keep the processes' logs).

Writes bench/results/latest.json, latest.md and PNG plots. Exits 0 when the run completed, even
if goals are not met (the table says which); non-zero only if the harness itself failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable

from bench.figures import (
    BenchContext,
    Durations,
    checkout_create,
    emulator,
    entitlements,
    event_processing,
    pgbouncer,
    status_latency,
    sustained_load,
    two_nodes,
    usage,
    webhook_ingest,
    webhook_to_client,
    websocket_capacity,
)
from bench.plots import write_plots
from bench.procs import ROOT, Managed, ProcessRegistry, raise_nofile_limit
from bench.results import (
    RESULTS_DIR,
    Figure,
    machine_info,
    not_available,
    splice_into,
    write_results,
)
from bench.stack import Stack, log

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/billingos_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
BUDGET_SECONDS = 9 * 60  # `make bench` must finish in 10 minutes, stack start-up included

# (name, measure, the figure keys it yields — for the "skipped" rows when the budget runs out)
FIGURES: list[
    tuple[str, Callable[[BenchContext], list[Figure]], list[tuple[str, str, str, str]]]
] = [
    (
        "webhook_ingest",
        webhook_ingest.measure,
        [
            (*webhook_ingest.THROUGHPUT, webhook_ingest.THROUGHPUT_GOAL),
            (*webhook_ingest.LATENCY, webhook_ingest.LATENCY_GOAL),
        ],
    ),
    ("checkout_create", checkout_create.measure, [(*checkout_create.KEY, checkout_create.GOAL)]),
    (
        "entitlements",
        entitlements.measure,
        [
            (*entitlements.THROUGHPUT, entitlements.THROUGHPUT_GOAL),
            (*entitlements.LATENCY, entitlements.LATENCY_GOAL),
        ],
    ),
    (
        "event_processing",
        event_processing.measure,
        [(*event_processing.KEY, event_processing.GOAL)],
    ),
    (
        "sustained_load",
        sustained_load.measure,
        [(*k, g) for k, g in sustained_load.KEYS],
    ),
    ("pgbouncer", pgbouncer.measure, [(*pgbouncer.KEY, pgbouncer.GOAL)]),
    ("two_nodes", two_nodes.measure, [(*two_nodes.KEY, two_nodes.GOAL)]),
    (
        "status_latency",
        status_latency.measure,
        [
            (*status_latency.P50, status_latency.P50_GOAL),
            (*status_latency.P99, status_latency.P99_GOAL),
        ],
    ),
    (
        "webhook_to_client",
        webhook_to_client.measure,
        [(*webhook_to_client.KEY, webhook_to_client.GOAL)],
    ),
    (
        "websocket_capacity",
        websocket_capacity.measure,
        [
            (*websocket_capacity.CLIENTS, websocket_capacity.GOALS[0]),
            (*websocket_capacity.MEMORY, websocket_capacity.GOALS[1]),
            (*websocket_capacity.BROADCAST, websocket_capacity.GOALS[2]),
        ],
    ),
    ("usage", usage.measure, usage.KEYS),
    ("emulator", emulator.measure, [(*emulator.KEY, emulator.GOAL)]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="BillingOS benchmarks (make bench)")
    parser.add_argument(
        "--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1"
    )
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""))
    args = parser.parse_args(argv)
    only = {name for name in args.only.split(",") if name}
    started = time.monotonic()
    raise_nofile_limit()
    registry = ProcessRegistry("bench")
    figures: list[Figure] = []
    machine = machine_info()
    mode = "quick" if args.quick else "full"
    log(
        f"make bench ({mode}): {machine['cores']} cores, {machine['memory_mib']} MiB, "
        f"Python {machine['python']}"
    )
    try:
        ctx = _start(registry, args.quick)
        for name, measure, keys in FIGURES:
            if only and name not in only:
                continue
            elapsed = time.monotonic() - started
            if elapsed > BUDGET_SECONDS:
                figures += [
                    not_available(*k, why="the 10-minute time budget ran out") for k in keys
                ]
                continue
            log(f"── {name} ({elapsed:.0f} s in)")
            try:
                got = measure(ctx)
            except Exception as exc:  # one broken figure must not cost the others
                traceback.print_exc()
                why = f"harness error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                got = [not_available(*k, why=why) for k in keys]
            for figure in got:
                log(f"   {figure.title}: {_describe(figure)}")
            figures += got
        # A quick run proves the harness works; its numbers mean little, so it never replaces
        # the committed results.
        out_dir = RESULTS_DIR / "quick" if args.quick else RESULTS_DIR
        plots = write_plots(ctx.plots, out_dir)
        run = {
            "mode": mode,
            "seconds": time.monotonic() - started,
            "loadgen_processes": ctx.loadgen_processes,
            "web_processes": 2,
            "plots": [p.name for p in plots],
        }
        json_path, md_path = write_results(figures, machine=machine, run=run, directory=out_dir)
        log(f"wrote {json_path.relative_to(ROOT)}, {md_path.name}, {len(plots)} plots")
        if not args.quick and splice_into(ROOT / "BENCHMARKS.md", md_path.read_text(), "results"):
            log("BENCHMARKS.md results section updated from latest.md")
        print(md_path.read_text(), flush=True)
    finally:
        log("stopping every process the harness started")
        registry.close()
    return 0


def _describe(figure: Figure) -> str:
    if not figure.available:
        return figure.reason or "not available"
    verdict = {True: "met", False: "NOT met", None: ""}[figure.passed]
    baseline = f" (baseline {figure.baseline:,.1f})" if figure.baseline is not None else ""
    value = f"{figure.value:,.1f}" if figure.value is not None else "—"
    return f"{value} {figure.unit}{baseline} → goal {figure.goal}: {verdict}"


def _start(registry: ProcessRegistry, quick: bool) -> BenchContext:
    from app import create_app
    from app.config import Settings

    stack = Stack(
        registry,
        database_url=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        redis_url=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
    )
    stack.prepare_data()
    emulator_url = stack.start_emulator()
    log(f"emulator: {emulator_url or 'not available (no stripe_emulator/__main__.py)'}")
    _, web_port = stack.start_web("web", workers=2)
    log(f"web: gunicorn (gevent, 2 workers) on :{web_port}")
    ingest_baselines: list[Managed] = []
    baseline_port: int | None
    try:
        baseline_proc, baseline_port = stack.start_web(
            "baseline", wsgi="bench.baseline_webhook_app:app"
        )
        ingest_baselines.append(baseline_proc)
        log(f"baseline webhook app on :{baseline_port}")
    except (RuntimeError, TimeoutError) as exc:
        log(f"baseline webhook app did not start: {exc}")
        baseline_port = None
    raw_port: int | None
    try:
        raw_proc, raw_port = stack.start_web("raw", wsgi="bench.raw_webhook_app:app")
        ingest_baselines.append(raw_proc)
        log(f"raw-stack webhook baseline on :{raw_port}")
    except (RuntimeError, TimeoutError) as exc:
        log(f"raw-stack webhook baseline did not start: {exc}")
        raw_port = None
    seed = stack.seed(f"http://127.0.0.1:{web_port}", buyers=20)
    log(f"seeded organization {seed.organization_id}: 2 products, {len(seed.buyers)} buyers")
    # The harness commits checkout changes itself (status latency, broadcast): the same code
    # path, configuration and database as the stack.
    app = create_app(Settings.from_env(stack.env()))
    return BenchContext(
        stack=stack,
        seed=seed,
        web_port=web_port,
        baseline_port=baseline_port,
        raw_port=raw_port,
        ingest_baselines=ingest_baselines,
        durations=Durations.for_mode(quick),
        loadgen_processes=int(os.environ.get("BENCH_LOADGEN_PROCESSES", "2")),
        app=app,
        quick=quick,
    )


if __name__ == "__main__":
    sys.exit(main())
