"""Celery tasks: processing the Stripe webhook inbox.

`stripe.process_event(stripe_event_id)` is enqueued by `POST /stripe/webhooks` after the event is
committed, by the sweeper for events whose task was lost, and by `flask billingos events replay`.
It is safe to run any number of times, concurrently too: see `app.webhooks.service`.

Retries (https://docs.celeryq.dev/en/stable/userguide/tasks.html#retrying): transient errors —
Stripe unreachable, 5xx, rate limited; Postgres unreachable, deadlock, a unique-index race with
a concurrent writer — back off exponentially with jitter, and every attempt is counted in
`stripe_events.attempts`. After `MAX_ATTEMPTS`, or at once for an error retrying cannot fix (a
bug, a payload we cannot read), the event is `failed` with its error, for an operator
(`flask billingos events --failed`, then `replay`).
"""

from __future__ import annotations

import logging
import random

from celery import Task, shared_task
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from app import jobs
from app.webhooks import service
from tasks.transient import is_transient

log = logging.getLogger(__name__)


def _is_transient(error: BaseException) -> bool:
    # Beyond every task's transient errors: two events about the same new object, processed at
    # once by two workers; the loser of the unique-index race retries and finds the winner's row.
    return is_transient(error, also=(IntegrityError,))


@shared_task(
    name=jobs.STRIPE_PROCESS_EVENT,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # The attempt count in Postgres is the real bound; this only stops a loop when Postgres
    # itself is down and no attempt can be recorded.
    max_retries=service.MAX_ATTEMPTS * 2,
)
def process_event(self: Task, stripe_event_id: str) -> str:
    try:
        result = service.process_stored_event(stripe_event_id)
    except Exception as error:
        return _after_failure(self, stripe_event_id, error)
    return result.outcome


def _after_failure(task: Task, stripe_event_id: str, error: Exception) -> str:
    transient = _is_transient(error)
    try:
        record = service.record_processing_failure(stripe_event_id, error, permanent=not transient)
    except (OperationalError, DBAPIError) as db_error:
        # Postgres is unreachable: nothing can be recorded; try the whole thing again later.
        log.warning("stripe event %s: cannot record failure: %s", stripe_event_id, db_error)
        raise task.retry(exc=error, countdown=_countdown(task.request.retries + 1)) from None
    if record is None:
        return "already_done"
    if record.gave_up:
        log.error(
            "stripe event %s failed after %d attempt(s): %s",
            stripe_event_id,
            record.attempts,
            service.describe_error(error),
            exc_info=not transient,
        )
        return "failed"
    log.warning(
        "stripe event %s attempt %d failed, retrying: %s",
        stripe_event_id,
        record.attempts,
        service.describe_error(error),
    )
    raise task.retry(exc=error, countdown=_countdown(record.attempts)) from None


def _countdown(attempts: int) -> float:
    return service.retry_countdown(attempts, jitter=random.random())
