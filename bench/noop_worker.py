"""The event-processing baseline: a Celery app whose only task does nothing.

Same configuration (celeryconfig: acks_late, prefetch 1, Redis broker), same prefork pool and
process count as the real worker, so "events/s to committed effects" can be read against the
broker's own ceiling on this machine in the same run.

    celery -A bench.noop_worker worker -Q bench_noop -c 2
"""

from __future__ import annotations

import os

from celery import Celery

NOOP_QUEUE = "bench_noop"
NOOP_TASK = "bench.noop"

celery_app = Celery("bench_noop")
celery_app.config_from_object("celeryconfig")
celery_app.conf.broker_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
celery_app.conf.imports = ()


@celery_app.task(name=NOOP_TASK)
def noop(*_args: object) -> None:
    """Nothing: what is left is the broker round trip and the worker's own bookkeeping."""
