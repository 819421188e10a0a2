"""Reconciliation from Stripe's side: events Stripe holds that our inbox lacks.

Webhooks can be lost for good: Stripe gives up on an endpoint after three days of failures, an
endpoint can be disabled or misconfigured, and an event created while no endpoint listened is
never sent. Stripe keeps every event listable for 30 days (`GET /v1/events`), so a beat job
(`maintenance.backfill_stripe_events`) lists those Stripe could not deliver
(`delivery_success=false`) and every event of a recent time window, and stores any our inbox
lacks exactly as a delivery would (unique on the event id, so one that arrives meanwhile is
stored once). https://docs.stripe.com/webhooks/process-undelivered-events
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from app.db import db
from app.stripe_gateway import get_gateway
from app.webhooks import service
from models.base import utcnow

log = logging.getLogger(__name__)

# Stripe retries a delivery for three days; after that only the events API has the event.
UNDELIVERED_LOOKBACK_SECONDS = 3 * 24 * 3600
# Every event of this recent window is checked too (one Stripe never tried to send); the
# newest minute is left to the webhooks themselves.
RECENT_WINDOW_SECONDS = 3600
SETTLE_SECONDS = 60
# Pages of 100 events read per run and query; the next run continues the work.
MAX_PAGES = 20


def _events(**query: Any) -> Iterator[dict[str, Any]]:
    gateway = get_gateway()
    starting_after: str | None = None
    for _ in range(MAX_PAGES):
        page = gateway.list_events(starting_after=starting_after, **query)
        for event in page.data:
            yield json.loads(str(event))
        if not page.has_more or not page.data:
            return
        starting_after = page.data[-1].id


def backfill_events(settle_seconds: int = SETTLE_SECONDS) -> list[str]:
    """Store the events Stripe has and our inbox lacks; returns their ids (enqueued)."""
    now = int(utcnow().timestamp())
    seen: set[str] = set()
    stored: list[str] = []
    queries = (
        {"created_gte": now - UNDELIVERED_LOOKBACK_SECONDS, "delivery_success": False},
        {"created_gte": now - RECENT_WINDOW_SECONDS, "created_lte": now - settle_seconds},
    )
    assert db.engine is not None
    for query in queries:
        for event in _events(**query):
            if event["id"] in seen:
                continue
            seen.add(event["id"])
            with db.engine.begin() as connection:
                is_new = service.store_event(connection, event, json.dumps(event).encode())
            if is_new:
                stored.append(event["id"])
                if service.is_handled(event):
                    service.enqueue_processing(event["id"])
    if stored:
        log.warning("stored %d Stripe event(s) no webhook had delivered", len(stored))
    return stored
