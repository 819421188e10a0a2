"""Two nodes: webhook POSTed to node B, processed by node B's worker, seen on node A's websocket.

Node A is the stack the other figures use (gunicorn, 2 web processes); node B is a second,
independent web + worker pair (1 web process, 1 worker process) sharing only Postgres and
Redis — what "another machine" is for BillingOS. Node A's workers are stopped, so every event
is node B's to process; the buyers watch on node A. The baseline is the same path on one node
(POST to A, A's 2 workers), measured in the same run with as many checkouts.
"""

from __future__ import annotations

from bench.figures import BenchContext, FeatureMissing, progress
from bench.figures.webhook_to_client import paced_latencies
from bench.results import Figure, not_available
from bench.stats import summarize_latencies

KEY = ("two_nodes_webhook_to_client_p99", "two nodes: webhook to B → websocket on A, p99", "ms")
GOAL = "p99 ≤ 100 ms"


def measure(ctx: BenchContext) -> list[Figure]:
    samples = min(40, max(10, ctx.durations.samples // 20))
    try:
        ctx.start_workers()
        progress(f"two nodes: {samples} checkouts on one node (baseline)")
        one_node = paced_latencies(ctx, samples, ws_port=ctx.web_port, post_port=ctx.web_port)
        ctx.stop_workers()
        progress("two nodes: starting node B (1 web process, 1 worker process)")
        node_b, port_b = ctx.stack.start_web("node-b", workers=1)
        worker_b = ctx.stack.start_worker("node-b-worker", concurrency=1)
        try:
            progress(f"two nodes: {samples} checkouts, webhook to B, websocket on A")
            across = paced_latencies(ctx, samples, ws_port=ctx.web_port, post_port=port_b)
        finally:
            worker_b.stop()
            node_b.stop()
    except FeatureMissing as exc:
        return [not_available(*KEY, GOAL, str(exc))]
    finally:
        ctx.stop_workers()
    if not across or not one_node:
        return [not_available(*KEY, GOAL, "no websocket saw `succeeded`")]
    s, b = summarize_latencies(across), summarize_latencies(one_node)
    ctx.plots["two_nodes"] = {"webhook to B, websocket on A": across, "one node": one_node}
    figure = Figure(
        *KEY,
        goal=GOAL,
        value=s.p99,
        baseline=b.p99,
        baseline_label="same path on one node",
        details={"samples": samples, "across": s.as_dict(), "one_node": b.as_dict()},
    )
    figure.passed = len(across) == samples and s.p99 <= 100
    return [figure]
