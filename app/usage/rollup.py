"""Rolling old ledger rows of closed periods up into daily rows (the `usage.roll_up` task)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from models.base import utcnow

# Ledger rows are kept this long (and their idempotency keys recognized) before rolling up.
LEDGER_RETENTION = timedelta(days=35)
ROLLUP_BATCH = 5000


# Moves a batch of old ledger rows of closed periods into daily rollups, atomically: the rows
# deleted are exactly the rows added, so running it twice (or concurrently: SKIP LOCKED) never
# counts a row twice. The aggregates already hold the period totals and are not touched.
_ROLLUP_SQL = text(
    """
WITH batch AS (
    SELECT id FROM usage_events
    WHERE period_end <= :now AND created_at < :cutoff
    ORDER BY period_end, created_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
),
moved AS (
    DELETE FROM usage_events e USING batch WHERE e.id = batch.id
    RETURNING e.customer_id, e.feature_id, (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
              e.quantity
),
rolled AS (
    INSERT INTO usage_rollups (customer_id, feature_id, day, quantity, events)
    SELECT customer_id, feature_id, day, sum(quantity), count(*) FROM moved
    GROUP BY customer_id, feature_id, day
    ON CONFLICT (customer_id, feature_id, day) DO UPDATE
    SET quantity = usage_rollups.quantity + EXCLUDED.quantity,
        events = usage_rollups.events + EXCLUDED.events
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved)
"""
)


def roll_up_ledger(session: Session, now: datetime | None = None) -> int:
    """Roll up one batch of old ledger rows; returns how many rows moved (0: nothing left)."""
    now = now or utcnow()
    moved: int = session.execute(
        _ROLLUP_SQL, {"now": now, "cutoff": now - LEDGER_RETENTION, "batch": ROLLUP_BATCH}
    ).scalar_one()
    return moved
