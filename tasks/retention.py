"""Celery task: `maintenance.apply_retention`, the beat job behind app/retention.py.

Each kind of data is pruned in batches of its own transaction (no long locks on tables the web
process writes to) until a batch comes back short. The horizons are settings:
SESSION_TOKEN_RETENTION_DAYS, CLIENT_SECRET_RETENTION_DAYS, EVENT_PAYLOAD_RETENTION_DAYS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from flask import current_app

from app import jobs, retention, settings_of
from app.db import db

log = logging.getLogger(__name__)


def _in_batches(job: Callable[..., int], older_than_days: int) -> int:
    total = 0
    while True:
        with db.transaction() as session:
            done = job(session, older_than_days=older_than_days, batch_size=retention.BATCH_SIZE)
        total += done
        if done < retention.BATCH_SIZE:
            return total


@shared_task(name=jobs.MAINTENANCE_APPLY_RETENTION)
def apply_retention() -> dict[str, int]:
    settings = settings_of(current_app)
    jobs: dict[str, tuple[Callable[..., int], int]] = {
        "session_tokens_deleted": (
            retention.prune_expired_session_tokens,
            settings.session_token_retention_days,
        ),
        "client_secrets_scrubbed": (
            retention.scrub_client_secrets,
            settings.client_secret_retention_days,
        ),
        "event_payloads_scrubbed": (
            retention.scrub_event_payloads,
            settings.event_payload_retention_days,
        ),
    }
    counts = {name: _in_batches(job, days) for name, (job, days) in jobs.items()}
    if any(counts.values()):
        log.info("retention: %s", ", ".join(f"{name}={count}" for name, count in counts.items()))
    return counts
