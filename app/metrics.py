"""Prometheus metrics for `/metrics`.

With several gunicorn workers, set PROMETHEUS_MULTIPROC_DIR (the Procfile does) so the scrape
aggregates every worker instead of showing whichever one answered.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "billingos_http_requests_total", "HTTP requests answered", ["method", "endpoint", "status"]
)
STRIPE_EVENT_VERSION_MISMATCH = Counter(
    "billingos_stripe_event_api_version_mismatch_total",
    "Stripe events rendered in another API version than ours; their object was re-fetched",
    ["api_version"],
)
LATENCY = Histogram(
    "billingos_http_request_seconds",
    "Time to answer an HTTP request",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)


def render_metrics() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, mimetype=CONTENT_TYPE_LATEST)


def init_metrics(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        started = g.get("request_started")
        # The endpoint name, never the URL: paths carry ids and client secrets.
        endpoint = request.endpoint or "unmatched"
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        if started is not None:
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response
