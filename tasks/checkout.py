"""Celery tasks: the Stripe work of a checkout (bodies in app/checkout/stripe_steps.py).

Retry policy (https://docs.celeryq.dev/en/stable/userguide/tasks.html#retrying): transient
errors — Stripe unreachable, timed out, 5xx, rate limited; Postgres connection lost, deadlock —
are retried with exponential backoff and full jitter, so a burst of failures does not come back
as a synchronized burst. Permanent errors (a decline, an invalid request) are not retried: the
bodies turn them into the checkout's `failed` state. Every run is counted in Postgres
(`prepare_attempts`/`confirm_attempts`); after `MAX_ATTEMPTS` the checkout shows `failed` with
`last_error.code = stripe_unavailable` instead of hanging.
"""

from __future__ import annotations

import logging
import random
import uuid
from typing import Any

from celery import Task, shared_task
from sqlalchemy.exc import DBAPIError, OperationalError

from app import jobs
from app.checkout import refunds, stripe_steps
from tasks.transient import TRANSIENT_ERRORS, is_transient

log = logging.getLogger(__name__)

# First retry after ~0.5 s, doubling, never more than 30 s (well under the broker's
# visibility timeout, see celeryconfig.py).
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


def backoff(attempt: int) -> float:
    """Full jitter (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/)."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    return BACKOFF_BASE_SECONDS / 2 + random.uniform(0, ceiling)


def _retry_or_give_up(task: Task, checkout_id: uuid.UUID, stage: str, error: Exception) -> None:
    if not is_transient(error):
        raise error
    try:
        attempt = stripe_steps.attempts(checkout_id, stage)
    except (OperationalError, DBAPIError):
        # Postgres is unreachable: nothing can be read or recorded; try again later.
        attempt = task.request.retries + 1
    else:
        if attempt >= stripe_steps.MAX_ATTEMPTS:
            log.error("checkout %s: %s gave up after %d attempts: %s", checkout_id, stage,
                      attempt, type(error).__name__)  # fmt: skip
            stripe_steps.give_up(checkout_id, stage)
            return
    log.warning(
        "checkout %s: %s attempt %d failed (%s), retrying",
        checkout_id,
        stage,
        attempt,
        type(error).__name__,
    )
    raise task.retry(exc=error, countdown=backoff(attempt)) from None


@shared_task(
    name=jobs.CHECKOUT_PREPARE,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # The attempt count in Postgres is the real bound; this only stops a loop while Postgres
    # is down and no attempt can be recorded.
    max_retries=stripe_steps.MAX_ATTEMPTS * 2,
)
def prepare(self: Task, checkout_id: str) -> None:
    checkout = uuid.UUID(checkout_id)
    try:
        stripe_steps.prepare_checkout(checkout)
    except Exception as error:
        _retry_or_give_up(self, checkout, "prepare", error)


@shared_task(
    name=jobs.CHECKOUT_CONFIRM,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=stripe_steps.MAX_ATTEMPTS * 2,
)
def confirm(
    self: Task,
    checkout_id: str,
    confirmation: int,
    payment_method_id: str | None = None,
    confirmation_token_id: str | None = None,
) -> None:
    checkout = uuid.UUID(checkout_id)
    try:
        stripe_steps.confirm_checkout(
            checkout,
            confirmation,
            payment_method=payment_method_id,
            confirmation_token=confirmation_token_id,
        )
    except Exception as error:
        _retry_or_give_up(self, checkout, "confirm", error)


# Tasks that only read Stripe's state and apply it: Celery's own autoretry (exponential backoff
# with jitter) on transient errors is enough, since running them again is always safe.
_AUTORETRY: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": int(BACKOFF_MAX_SECONDS),
    "retry_jitter": True,
    "max_retries": stripe_steps.MAX_ATTEMPTS,
}


@shared_task(name=jobs.CHECKOUT_RECONCILE, **_AUTORETRY)
def reconcile(self: Task, checkout_id: str) -> None:
    """Settle a checkout from Stripe's current view (after 3-D Secure; by the sweeper, which
    also prepares again a `pending` one and re-sends a lost confirmation)."""
    stripe_steps.settle_stuck_checkout(uuid.UUID(checkout_id))


@shared_task(name=jobs.CHECKOUT_REFUND_ORPHANED_PAYMENT, **_AUTORETRY)
def refund_orphaned_payment(self: Task, stripe_payment_intent_id: str) -> None:
    """Refund a payment that succeeded after its checkout had ended."""
    refunds.refund_orphaned_payment(stripe_payment_intent_id)


# Not bounded in Postgres: an overdue checkout stays overdue, and the next beat run enqueues it
# again.
@shared_task(name=jobs.CHECKOUT_EXPIRE, **_AUTORETRY)
def expire(self: Task, checkout_id: str) -> None:
    stripe_steps.expire_checkout(uuid.UUID(checkout_id))


@shared_task(name=jobs.CHECKOUT_EXPIRE_OVERDUE)
def expire_overdue() -> int:
    """Beat: expire every checkout past `expires_at`, each in its own task."""
    checkout_ids = stripe_steps.overdue_checkout_ids()
    for checkout_id in checkout_ids:
        expire.delay(str(checkout_id))
    if checkout_ids:
        log.info("expiring %d overdue checkout(s)", len(checkout_ids))
    return len(checkout_ids)
