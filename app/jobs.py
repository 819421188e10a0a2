"""Background jobs by name: the one list of task names, and how the product sends them.

The product (`app`) never imports `tasks`: it sends a task by its name through the current
Celery app, and `tasks/*.py` register their functions under these same names. So the worker
code can import services freely without an import cycle, and `lint-imports` holds the line.
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from sqlalchemy.orm import Session

from app.db import on_commit

CATALOG_MIRROR_PRODUCT = "catalog.mirror_product"

CHECKOUT_PREPARE = "checkout.prepare"
CHECKOUT_CONFIRM = "checkout.confirm"
CHECKOUT_RECONCILE = "checkout.reconcile"
CHECKOUT_EXPIRE = "checkout.expire"
CHECKOUT_EXPIRE_OVERDUE = "checkout.expire_overdue"
CHECKOUT_REFUND_ORPHANED_PAYMENT = "checkout.refund_orphaned_payment"

STRIPE_PROCESS_EVENT = "stripe.process_event"

MAINTENANCE_REQUEUE_UNPROCESSED_EVENTS = "maintenance.requeue_unprocessed_events"
MAINTENANCE_RECONCILE_STUCK_CHECKOUTS = "maintenance.reconcile_stuck_checkouts"
MAINTENANCE_PRUNE_PROCESSED_EVENTS = "maintenance.prune_processed_events"
MAINTENANCE_BACKFILL_STRIPE_EVENTS = "maintenance.backfill_stripe_events"
MAINTENANCE_APPLY_RETENTION = "maintenance.apply_retention"

USAGE_ROLL_UP_LEDGER = "usage.roll_up_ledger"

ALL = frozenset(
    {
        CATALOG_MIRROR_PRODUCT,
        CHECKOUT_PREPARE,
        CHECKOUT_CONFIRM,
        CHECKOUT_RECONCILE,
        CHECKOUT_EXPIRE,
        CHECKOUT_EXPIRE_OVERDUE,
        CHECKOUT_REFUND_ORPHANED_PAYMENT,
        STRIPE_PROCESS_EVENT,
        MAINTENANCE_REQUEUE_UNPROCESSED_EVENTS,
        USAGE_ROLL_UP_LEDGER,
        MAINTENANCE_RECONCILE_STUCK_CHECKOUTS,
        MAINTENANCE_PRUNE_PROCESSED_EVENTS,
        MAINTENANCE_BACKFILL_STRIPE_EVENTS,
        MAINTENANCE_APPLY_RETENTION,
    }
)


def send(name: str, *args: Any, countdown: float | None = None, **kwargs: Any) -> None:
    """Send task `name` now, through the current Celery app."""
    current_app.send_task(name, args=args, kwargs=kwargs, countdown=countdown)


def enqueue_after_commit(
    session: Session,
    name: str,
    *args: Any,
    countdown: float | None = None,
    **kwargs: Any,
) -> None:
    """Send task `name` once the session's transaction has committed; never if it rolls back.

    A task sent before commit could run before its row is visible and find nothing; a task sent
    for a transaction that then rolled back would act on a row that never existed.
    """
    on_commit(session, lambda: send(name, *args, countdown=countdown, **kwargs))
