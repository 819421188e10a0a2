"""Celery tasks: the catalog mirrored to Stripe (bodies in app/catalog/mirror.py)."""

from __future__ import annotations

import uuid

from celery import Task, shared_task

from app import jobs
from app.catalog import mirror
from tasks.checkout import BACKOFF_MAX_SECONDS
from tasks.transient import TRANSIENT_ERRORS

# A product that cannot be mirrored now is mirrored lazily by its first checkout, so a bounded
# number of retries is enough.
MAX_RETRIES = 8


@shared_task(
    name=jobs.CATALOG_MIRROR_PRODUCT,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=int(BACKOFF_MAX_SECONDS),
    retry_jitter=True,
    max_retries=MAX_RETRIES,
)
def mirror_product(self: Task, product_id: str) -> None:
    mirror.mirror_product(uuid.UUID(product_id))
