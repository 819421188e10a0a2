"""Emulator: PaymentIntent create+confirm pairs per second, via `bench/emulator_bench.py`.

The emulator engineer's benchmark starts its own emulator and prints, last, one JSON line with
its figures; this module runs it and turns that line into a row. The figure is the `raw` mode
(keep-alive `http.client`, the emulator's own speed); the `stripe` mode (the real library, whose
client CPU is the limit) is kept in the details.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.figures import BenchContext, progress
from bench.procs import ROOT
from bench.results import Figure, not_available

KEY = ("emulator_pairs", "emulator PaymentIntent create+confirm", "pairs/s")
GOAL = "≥ 500 pairs/s"
SCRIPT = ROOT / "bench" / "emulator_bench.py"


def measure(ctx: BenchContext) -> list[Figure]:
    if not SCRIPT.exists():
        return [not_available(*KEY, GOAL, "bench/emulator_bench.py is not there")]
    pairs = 300 if ctx.quick else 3000
    progress(f"emulator: {pairs} create+confirm pairs (bench/emulator_bench.py)")
    try:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--pairs", str(pairs), "--workers", "2"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [not_available(*KEY, GOAL, "bench/emulator_bench.py ran over 300 s")]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return [not_available(*KEY, GOAL, f"bench/emulator_bench.py failed: {why[0][:200]}")]
    results = {r["mode"]: r for r in json.loads(lines[-1])["results"]}
    main = results.get("raw") or next(iter(results.values()))
    figure = Figure(
        *KEY,
        goal=GOAL,
        value=float(main["pairs_per_s"]),
        loadgen_cpu=main["client_cpu_s"] / main["wall_s"] if main["wall_s"] else None,
        details={"modes": results},
    )
    figure.passed = figure.value is not None and figure.value >= 500
    return [figure]
