"""Celery task: roll old usage ledger rows up into daily totals (beat, hourly).

Safe to run twice or concurrently: each batch deletes exactly the rows it adds to the rollups,
in one statement, skipping rows another run holds.
"""

from __future__ import annotations

import logging

from celery import shared_task

from app import jobs
from app.db import db
from app.usage.service import roll_up_ledger

log = logging.getLogger(__name__)

# Batches per run, so one run never holds the worker for long; the next run continues.
MAX_BATCHES = 100


@shared_task(name=jobs.USAGE_ROLL_UP_LEDGER)
def roll_up_usage_ledger() -> int:
    total = 0
    for _ in range(MAX_BATCHES):
        with db.transaction() as session:
            moved = roll_up_ledger(session)
        total += moved
        if not moved:
            break
    if total:
        log.info("rolled %d usage ledger row(s) up into daily totals", total)
    return total
