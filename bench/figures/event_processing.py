"""Event processing: events/s from the inbox to committed effects, with 2 worker processes.

N open checkouts for a one-time price, each of a different (new) customer, each get a real
(emulator) PaymentIntent that has succeeded; their signed `payment_intent.succeeded` events
are ingested with no worker running, then
`celery -A tasks.worker worker -c 2` starts and the harness samples how many checkouts have
reached `succeeded` (the committed effect) over time. The baseline is the same broker, pool and
process count running a no-op task (`bench/noop_worker.py`) over as many messages. Both rates
are taken between 10% and 90% completion, so worker start-up and the drain do not count.

Each event's committed effect is the whole `stripe.process_event` transaction: the inbox row
locked and marked processed, the payment row `succeeded`, the checkout `succeeded` (and
published), the customer's entitlements recomputed with a version bump (cache invalidated and
`entitlements.updated` published after commit). One customer per checkout, because a burst of
events is many buyers paying at once; spreading them over the 20 seeded buyers instead would
give each buyer ~100 purchases and measure a few customers' ever-growing histories.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.figures import BenchContext, FeatureMissing, progress
from bench.noop_worker import NOOP_QUEUE, NOOP_TASK
from bench.results import Figure, not_available

KEY = ("event_processing", "event processing (2 worker processes)", "events/s")
GOAL = "≥ 70% of the no-op task"


def completion_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Rate between the moments 10% and 90% of `total` were done (linear interpolation)."""

    def time_at(done: float) -> float | None:
        previous: tuple[float, int] | None = None
        for t, n in samples:
            if n >= done:
                if previous is None or n == previous[1]:
                    return t
                t0, n0 = previous
                return t0 + (t - t0) * (done - n0) / (n - n0)
            previous = (t, n)
        return None

    low, high = time_at(total * 0.1), time_at(total * 0.9)
    if low is None or high is None or high <= low:
        return 0.0
    return (total * 0.8) / (high - low)


def sample_progress(
    done: Callable[[], int], total: int, timeout: float, interval: float = 0.02
) -> list[tuple[float, int]]:
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = done()
        samples.append((time.monotonic(), n))
        if n >= total:
            break
        time.sleep(interval)
    return samples


def measure(ctx: BenchContext) -> list[Figure]:
    try:
        return [_measure(ctx)]
    except FeatureMissing as exc:
        return [not_available(*KEY, GOAL, str(exc))]
    finally:
        ctx.stop_workers()
        ctx.purge_queues("celery", NOOP_QUEUE)


def processing_rate(
    ctx: BenchContext, total: int, worker_env: dict[str, str] | None = None
) -> tuple[float, int, list[str]]:
    """(events/s between 10% and 90%, effects committed, checkout ids) for `total` purchases.

    Their events are ingested with no worker running, then 2 worker processes (with
    `worker_env`) start and drain them; the workers are stopped again before returning.
    """
    ctx.stop_workers()
    progress(
        f"event processing: {total} open checkouts (one customer each) with succeeded"
        " PaymentIntents"
    )
    checkouts = ctx.create_open_checkouts(total, with_payment_intent=True, own_customers=True)
    ids = [c["checkout_id"] for c in checkouts]
    progress("event processing: ingesting their payment_intent.succeeded events (no worker)")
    ingest = ctx.load(
        ctx.web_port,
        mode="closed",
        duration=120,
        connections=32,
        request={
            "kind": "stripe_webhook",
            "secret": ctx.stack.webhook_secret,
            "event_type": "payment_intent.succeeded",
            "objects": [c["payment_intent"] for c in checkouts],
        },
        ok_statuses=[200],
    )
    if ingest.ok != total:
        raise FeatureMissing(f"webhook ingest acknowledged {ingest.ok}/{total} ({ingest.errors})")

    with _SucceededCounter(ctx) as succeeded:
        progress("event processing: starting 2 worker processes")
        ctx.start_workers(worker_env)
        first = sample_progress(succeeded, 1, timeout=30)
        if not first or first[-1][1] == 0:
            raise FeatureMissing("no checkout reached `succeeded` within 30 s of its event")
        samples = first + sample_progress(succeeded, total, timeout=max(60.0, total / 50))
    # The exact count, by the checkouts' own ids (the samples count the organization's).
    done = ctx.checkout_statuses(ids).get("succeeded", 0)
    rate = completion_rate(samples, total) if done >= total else 0.0
    progress(f"  {done}/{total} effects committed, {rate:,.0f} events/s")
    ctx.stop_workers()
    return rate, done, ids


def _measure(ctx: BenchContext) -> Figure:
    total = ctx.durations.samples
    stack_rate, done, ids = processing_rate(ctx, total)

    progress(f"event processing baseline: {total} no-op tasks, 2 worker processes")
    baseline_rate = _noop_rate(ctx, total)
    progress(f"  no-op: {baseline_rate:,.0f} tasks/s")
    figure = Figure(
        *KEY,
        goal=GOAL,
        value=stack_rate,
        baseline=baseline_rate,
        baseline_label="no-op Celery task",
        details={
            "events": total,
            "effects_committed": done,
            "statuses": ctx.checkout_statuses(ids),
        },
    )
    figure.passed = done == total and (figure.ratio or 0) >= 0.7
    return figure


class _SucceededCounter:
    """How many of this figure's checkouts have succeeded, cheaply enough to ask 50 times a second.

    The harness shares the 2 cores with the stack it measures: asking with the 2,000 checkout
    ids (an ORM query per sample) cost about a quarter of a core plus Postgres time, taken from
    the workers. This counts the organization's succeeded checkouts on one held connection,
    minus those that had succeeded before the workers started (none change status meanwhile:
    no worker runs until then, and figures run one at a time). The final per-status breakdown
    still uses the ids.
    """

    _COUNT = (
        "SELECT count(*) FROM checkout_sessions"
        " WHERE organization_id = %(organization_id)s AND status = 'succeeded'"
    )

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx

    def __enter__(self) -> Callable[[], int]:
        import psycopg2

        from app.db import db

        assert db.engine is not None
        # A connection of its own (not the pool's): autocommit, so each count sees the latest
        # commits.
        self.connection = psycopg2.connect(
            **db.engine.url.translate_connect_args(username="user", database="dbname")
        )
        self.connection.autocommit = True
        self.cursor = self.connection.cursor()
        self.before = self._count()
        return lambda: self._count() - self.before

    def _count(self) -> int:
        self.cursor.execute(self._COUNT, {"organization_id": self.ctx.seed.organization_id})
        row = self.cursor.fetchone()
        return int(row[0]) if row else 0

    def __exit__(self, *exc: object) -> None:
        self.connection.close()


def _noop_rate(ctx: BenchContext, total: int) -> float:
    import redis
    from celery import Celery

    sender = Celery("bench_noop_sender", broker=ctx.stack.redis_url)
    sender.config_from_object("celeryconfig")
    sender.conf.broker_url = ctx.stack.redis_url
    with sender.producer_or_acquire() as producer:
        for _ in range(total):
            sender.send_task(NOOP_TASK, queue=NOOP_QUEUE, producer=producer)
    client = redis.Redis.from_url(ctx.stack.redis_url)
    worker = ctx.stack.start_worker("noop-worker", app="bench.noop_worker", queues=NOOP_QUEUE)
    try:
        # Started = left the queue; with prefetch 1 and 2 processes at most 2 are in flight.
        samples = sample_progress(lambda: total - int(client.llen(NOOP_QUEUE)), total, 120)
        time.sleep(0.2)
    finally:
        worker.stop()
    return completion_rate(samples, total)
