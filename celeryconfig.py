"""Celery configuration (https://docs.celeryq.dev/en/stable/userguide/configuration.html).

The broker URL comes from the app's settings (REDIS_URL); everything here is policy.
"""

import os

from app import jobs

# Tasks are acknowledged after they finish, and a task whose worker died is given back to the
# broker: with idempotent tasks, "at least once" is the guarantee we want.
task_acks_late = True
task_reject_on_worker_lost = True
# One message at a time per process, so a long task never holds others hostage.
worker_prefetch_multiplier = 1

task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"
# State lives in Postgres; results would only fill Redis.
task_ignore_result = True
result_backend = None

task_soft_time_limit = 30
task_time_limit = 60

# An unacknowledged message is redelivered after this many seconds. It must exceed the longest
# retry countdown plus run time, or a waiting task is delivered twice (Redis re-delivers any
# message not acknowledged within it, including one held back by a countdown); retries
# here back off for at most 5 minutes. A worker killed mid-task is covered sooner by the beat
# sweepers (unprocessed inbox events, stuck checkouts).
broker_transport_options = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "900")),
}
broker_connection_retry_on_startup = True

# Task events for Flower (received, started, succeeded, failed, retried…). The "sent" event is
# off: it would double the Redis work of every enqueue on the web's hot paths, and Flower shows
# a task from the moment a worker receives it.
worker_send_task_events = True
task_send_sent_event = False

timezone = "UTC"
enable_utc = True

# The task modules the worker loads; between them they register every name in `app.jobs.ALL`.
imports = (
    "tasks.catalog",
    "tasks.checkout",
    "tasks.stripe_events",
    "tasks.maintenance",
    "tasks.retention",
    "tasks.usage",
)

beat_schedule: dict[str, dict[str, object]] = {
    # Webhook inbox (issue 5): resend events whose task was lost, settle checkouts a webhook
    # never settled, and forget processed events after Stripe's own 30-day retention.
    "requeue-unprocessed-stripe-events": {
        "task": jobs.MAINTENANCE_REQUEUE_UNPROCESSED_EVENTS,
        "schedule": 30.0,
    },
    "reconcile-stuck-checkouts": {
        "task": jobs.MAINTENANCE_RECONCILE_STUCK_CHECKOUTS,
        "schedule": 60.0,
    },
    "prune-processed-stripe-events": {
        "task": jobs.MAINTENANCE_PRUNE_PROCESSED_EVENTS,
        "schedule": 6 * 3600.0,
    },
    # Events Stripe could not deliver (or never sent), listed from Stripe and stored.
    "backfill-stripe-events": {
        "task": jobs.MAINTENANCE_BACKFILL_STRIPE_EVENTS,
        "schedule": 300.0,
    },
    # Retention: expired session tokens deleted, finished checkouts' client secrets and done
    # inbox payloads scrubbed (horizons in days are settings; see tasks/retention.py).
    "apply-retention": {
        "task": jobs.MAINTENANCE_APPLY_RETENTION,
        "schedule": 3600.0,
    },
    # Usage metering (issue 15): ledger rows of closed periods older than the retention window
    # move into daily rollups (the period totals are already in usage_aggregates).
    "roll-up-usage-ledger": {
        "task": jobs.USAGE_ROLL_UP_LEDGER,
        "schedule": 3600.0,
    },
    # Checkout (issue 4): a checkout is payable for an hour; past that, cancel its intent or
    # incomplete subscription in Stripe and mark it expired.
    "expire-overdue-checkouts": {
        "task": jobs.CHECKOUT_EXPIRE_OVERDUE,
        "schedule": 60.0,
    },
}
