"""Prometheus metrics, from web and worker processes alike.

Multi-process: gunicorn runs several workers and Celery several pool processes, each with its
own counters. With PROMETHEUS_MULTIPROC_DIR set (before this module is first imported) every
process writes its samples to files there, and a scrape aggregates them all:

- web: `GET /metrics` (gunicorn.conf.py sets and empties the directory, and discards a dead
  worker's live gauges);
- worker: the Celery parent process serves the directory on WORKER_METRICS_PORT
  (`start_worker_metrics_server`), since a worker has no HTTP server of its own.

Costs on hot paths are a dictionary lookup and a lock-free add per sample: nothing here queries
the database except the inbox gauges, which are computed once per scrape.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import values as _values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app import jobs

log = logging.getLogger(__name__)

# prometheus_client picks per-process or multi-process values when it is first imported, and
# the `celery` command imports it (through Flower's command plugin) before any of our code, so
# before tasks/worker.py can set the directory: choose again, before the first metric exists.
if _values.ValueClass is _values.MutexValue and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _values.ValueClass = _values.get_value_class()

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "billingos_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
STRIPE_EVENT_VERSION_MISMATCH = Counter(
    "billingos_stripe_event_api_version_mismatch_total",
    "Stripe events rendered in another API version than ours; their object was re-fetched",
    ["api_version"],
)
LATENCY = Histogram(
    "billingos_http_request_seconds",
    "Time to answer an HTTP request, by route template",
    ["method", "route"],
    buckets=_FAST,
)
WEBHOOKS_RECEIVED = Counter(
    "billingos_webhooks_received_total",
    "Stripe webhook deliveries verified and acknowledged (stored=false: a duplicate delivery)",
    ["stored"],
)
TASKS = Counter(
    "billingos_tasks_total",
    "Celery task runs by outcome (success, failure, retry)",
    ["task", "outcome"],
)
TASK_SECONDS = Histogram(
    "billingos_task_seconds", "Time a Celery task ran (one attempt)", ["task"], buckets=_SLOW
)
WEBHOOK_EVENTS_PROCESSED = Counter(
    "billingos_webhook_events_processed_total",
    "Stripe inbox events handled by a worker, by result "
    "(processed, already_done, ignored, missing, failed)",
    ["result"],
)
CHECKOUTS_SETTLED = Counter(
    "billingos_checkouts_settled_total",
    "Checkouts reaching a final state (failed: a declined or refused attempt)",
    ["status"],
)
RECONCILER_REPAIRS = Counter(
    "billingos_reconciler_repairs_total",
    "What the sweepers put right: a checkout settled from Stripe's view, a lost event re-sent",
    ["kind"],
)
STREAM_CONNECTIONS = Gauge(
    "billingos_stream_connections",
    "Open websocket and server-sent-event streams",
    multiprocess_mode="livesum",
)
STRIPE_CALLS = Counter(
    "billingos_stripe_requests_total",
    "Calls to Stripe by gateway operation and result (ok or the error class)",
    ["operation", "result"],
)
STRIPE_SECONDS = Histogram(
    "billingos_stripe_request_seconds",
    "Time a Stripe call took, the library's own retries included",
    ["operation"],
    buckets=_SLOW,
)


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def aggregate_registry() -> CollectorRegistry | None:
    """All processes' samples (multi-process mode), or None for this process's default one."""
    if not _multiprocess_dir():
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


# --------------------------------------------------------------------------- scrape-time gauges


class InboxCollector(Collector):
    """Webhook inbox backlog and the age of its oldest pending event, read when scraped.

    One indexed query (`status, received_at`) per scrape, never per request.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from sqlalchemy import text

        from app.db import db

        backlog = GaugeMetricFamily(
            "billingos_inbox_pending_events", "Stripe events stored and not yet processed"
        )
        oldest = GaugeMetricFamily(
            "billingos_inbox_oldest_pending_seconds",
            "Age of the oldest pending Stripe event (0 when none)",
        )
        failed = GaugeMetricFamily(
            "billingos_inbox_failed_events", "Stripe events that gave up, awaiting an operator"
        )
        if db.engine is None:
            return
        try:
            with db.engine.connect() as connection:
                row = connection.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE status = 'pending'),"
                        " coalesce(extract(epoch FROM now() - min(received_at)"
                        "   FILTER (WHERE status = 'pending')), 0),"
                        " count(*) FILTER (WHERE status = 'failed')"
                        " FROM stripe_events WHERE status IN ('pending', 'failed')"
                    )
                ).one()
        except Exception:
            # A scrape must answer even with Postgres down; the gap in these series shows it.
            log.warning("inbox gauges unavailable", exc_info=True)
            return
        backlog.add_metric([], float(row[0]))
        oldest.add_metric([], float(row[1]))
        failed.add_metric([], float(row[2]))
        yield backlog
        yield oldest
        yield failed


def render_metrics() -> Response:
    registry = aggregate_registry()
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    data = generate_latest(registry)
    scrape_time = CollectorRegistry(auto_describe=True)
    scrape_time.register(InboxCollector())
    data += generate_latest(scrape_time)
    return Response(data, mimetype=CONTENT_TYPE_LATEST)


# --------------------------------------------------------------------------- web


def init_metrics(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        started = g.get("request_started")
        # The route template, never the URL: paths carry ids and client secrets, and each
        # distinct label value is a series of its own.
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        if started is not None:
            LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        return response


# --------------------------------------------------------------------------- Stripe


def observe_stripe_call(operation: str, seconds: float, error: BaseException | None) -> None:
    STRIPE_SECONDS.labels(operation).observe(seconds)
    STRIPE_CALLS.labels(operation, "ok" if error is None else type(error).__name__).inc()


# --------------------------------------------------------------------------- Celery

_STARTED = "_billingos_metrics_started"


def _task_started(task: Any = None, **_: Any) -> None:
    if task is not None:
        setattr(task.request, _STARTED, time.perf_counter())


def _task_finished(
    task: Any = None, retval: Any = None, state: str | None = None, **_: Any
) -> None:
    if task is None:
        return
    started = getattr(task.request, _STARTED, None)
    if started is not None:
        TASK_SECONDS.labels(task.name).observe(time.perf_counter() - started)
    if state == "SUCCESS":
        TASKS.labels(task.name, "success").inc()
        if task.name == jobs.STRIPE_PROCESS_EVENT and isinstance(retval, str):
            WEBHOOK_EVENTS_PROCESSED.labels(retval).inc()
        elif (
            task.name == jobs.MAINTENANCE_REQUEUE_UNPROCESSED_EVENTS
            and isinstance(retval, int)
            and retval
        ):
            RECONCILER_REPAIRS.labels("event_requeued").inc(retval)


def _task_failed(sender: Any = None, **_: Any) -> None:
    TASKS.labels(getattr(sender, "name", "unknown"), "failure").inc()


def _task_retried(sender: Any = None, **_: Any) -> None:
    TASKS.labels(getattr(sender, "name", "unknown"), "retry").inc()


def _worker_child_exited(pid: int | None = None, **_: Any) -> None:
    # A replaced pool process must not keep counting in the live-gauge sums.
    if pid is not None and _multiprocess_dir():
        multiprocess.mark_process_dead(pid)


def start_worker_metrics_server(**_: Any) -> None:
    """`worker_ready` (the Celery parent): serve every pool process's samples.

    Off unless WORKER_METRICS_PORT is set, and only meaningful in multi-process mode (the
    tasks run in the pool's children, not in this process).
    """
    port = os.environ.get("WORKER_METRICS_PORT")
    if not port:
        return
    registry = aggregate_registry()
    if registry is None:
        log.warning("WORKER_METRICS_PORT is set without PROMETHEUS_MULTIPROC_DIR: not serving")
        return
    from prometheus_client import start_http_server

    address = os.environ.get("WORKER_METRICS_ADDRESS", "127.0.0.1")
    start_http_server(int(port), addr=address, registry=registry)
    log.info("worker metrics on http://%s:%s/metrics", address, port)


def connect_task_metrics() -> None:
    from celery import signals

    signals.task_prerun.connect(_task_started, weak=False)
    signals.task_postrun.connect(_task_finished, weak=False)
    signals.task_failure.connect(_task_failed, weak=False)
    signals.task_retry.connect(_task_retried, weak=False)
    signals.worker_process_shutdown.connect(_worker_child_exited, weak=False)
    signals.worker_ready.connect(start_worker_metrics_server, weak=False)


# --------------------------------------------------------------------------- checkouts


_FINAL_CHECKOUT_STATUSES = frozenset({"succeeded", "failed", "expired", "canceled"})


def _on_checkout_status(target: Any, value: str, old: Any, _initiator: Any) -> None:
    if value not in _FINAL_CHECKOUT_STATUSES or value == old:
        return
    from sqlalchemy.orm import object_session

    from app.db import on_commit
    from app.logging_setup import current_task

    session = object_session(target)
    if session is None:
        return
    repaired = current_task() == jobs.CHECKOUT_RECONCILE

    def count() -> None:
        CHECKOUTS_SETTLED.labels(value).inc()
        if repaired:
            RECONCILER_REPAIRS.labels("checkout_settled").inc()

    on_commit(session, count)


def watch_checkout_settlements() -> None:
    """Count each checkout that reaches a final state, once its transaction commits.

    A listener on the status attribute (not a query, not a flush hook): it costs nothing until
    a status is assigned. Inside `checkout.reconcile` the change is also a reconciler repair.
    """
    from sqlalchemy import event

    from models.checkout import CheckoutSession

    if not event.contains(CheckoutSession.status, "set", _on_checkout_status):
        event.listen(CheckoutSession.status, "set", _on_checkout_status)
