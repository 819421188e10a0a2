"""Celery tasks: the beat sweepers that make "a lost message" a delay instead of a loss.

- `maintenance.requeue_unprocessed_events`: inbox events stored but still pending (the broker
  was down when the webhook arrived, or a worker died holding the task) are enqueued again.
- `maintenance.reconcile_stuck_checkouts`: checkouts left in `pending`/`processing`/
  `requires_action` are handed to `checkout.reconcile`, least recently seen first in batches
  that advance: a `pending` one is prepared again, a confirmation Stripe never received is sent
  again (same idempotency keys), and otherwise Stripe's state is applied, so a lost message or
  a webhook that never comes still ends them in their true, final state.
- `maintenance.backfill_stripe_events`: events Stripe holds but never delivered (it gave up,
  or no endpoint listened) are listed from Stripe and stored in the inbox like a delivery.
- `maintenance.prune_processed_events`: processed and ignored inbox rows older than 30 days are
  deleted (Stripe itself only keeps events for 30 days).

Their schedule is `celeryconfig.beat_schedule`. Each is safe to run twice or concurrently.
"""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app as flask_app

from app import jobs, settings_of
from app.db import db
from app.stripe_gateway import TransientStripeError
from app.webhooks import backfill, reconciliation, service

log = logging.getLogger(__name__)

# Rows deleted per transaction when pruning, so the job never holds long locks.
PRUNE_BATCH_SIZE = 5000


@shared_task(name=jobs.MAINTENANCE_REQUEUE_UNPROCESSED_EVENTS)
def requeue_unprocessed_events(older_than_seconds: float = service.REQUEUE_AFTER_SECONDS) -> int:
    with db.transaction() as session:
        requeued = service.requeue_unprocessed_events(
            session, older_than_seconds=older_than_seconds
        )
    if requeued:
        log.warning("re-enqueued %d stored but unprocessed Stripe event(s)", len(requeued))
    return len(requeued)


@shared_task(name=jobs.MAINTENANCE_RECONCILE_STUCK_CHECKOUTS)
def reconcile_stuck_checkouts(
    older_than_seconds: float = reconciliation.STUCK_AFTER_SECONDS,
) -> int:
    """Hand each stuck checkout to `checkout.reconcile` (its own task, retries and backoff)."""
    with db.transaction() as session:
        checkout_ids = reconciliation.stuck_checkout_ids(
            session, older_than_seconds=older_than_seconds
        )
    for checkout_id in checkout_ids:
        jobs.send(jobs.CHECKOUT_RECONCILE, str(checkout_id))
    if checkout_ids:
        log.info("asking Stripe about %d stuck checkout(s)", len(checkout_ids))
    return len(checkout_ids)


@shared_task(name=jobs.MAINTENANCE_PRUNE_PROCESSED_EVENTS)
def prune_processed_events(older_than_days: int | None = None) -> int:
    if older_than_days is None:
        # EVENT_RETENTION_DAYS (default: Stripe's own 30 days).
        older_than_days = settings_of(flask_app).event_retention_days
    total = 0
    while True:
        with db.transaction() as session:
            deleted = service.prune_processed_events(
                session, older_than_days=older_than_days, batch_size=PRUNE_BATCH_SIZE
            )
        total += deleted
        if deleted < PRUNE_BATCH_SIZE:
            return total


@shared_task(
    name=jobs.MAINTENANCE_BACKFILL_STRIPE_EVENTS,
    autoretry_for=(TransientStripeError,),
    retry_backoff=True,
    max_retries=3,
)
def backfill_stripe_events() -> int:
    return len(backfill.backfill_events())
