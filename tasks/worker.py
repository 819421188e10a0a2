"""Entry point for `celery -A tasks.worker worker|beat` and Flower."""

import os
import tempfile

# The worker's metrics endpoint (WORKER_METRICS_PORT, app/metrics.py) aggregates its pool
# processes through files in this directory; it must be set before the first metric exists.
if os.environ.get("WORKER_METRICS_PORT"):
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="billingos-prometheus-worker-")
    )

from app import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
