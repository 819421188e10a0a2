"""Old ledger rows roll up into daily totals; the period totals and recent rows stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from app.db import db
from app.usage.service import LEDGER_RETENTION, roll_up_ledger
from models import UsageAggregate, UsageEvent, UsageRollup
from models.base import utcnow
from tasks.usage import roll_up_usage_ledger
from tests.usage.conftest import subscribe, track


def test_rows_of_closed_periods_past_retention_move_into_daily_rollups(client, buyer, plans):
    subscribe(buyer, plans.basic)
    for i, quantity in enumerate((3, 4, 5)):
        track(client, buyer, quantity, key=f"old-{i}")
    track(client, buyer, 7, key="recent")
    # Age the first three: their period closed and they are past the retention window.
    long_ago = utcnow() - LEDGER_RETENTION - timedelta(days=40)
    db.session.execute(
        update(UsageEvent)
        .where(UsageEvent.idempotency_key.like("old-%"))
        .values(created_at=long_ago, occurred_at=long_ago, period_end=long_ago + timedelta(days=1))
    )
    db.session.commit()
    consumed_before = db.session.execute(select(func.sum(UsageAggregate.consumed))).scalar()

    assert roll_up_usage_ledger.run() == 3
    assert roll_up_usage_ledger.run() == 0  # safe to run again: nothing counted twice

    db.session.remove()
    (rollup,) = db.session.execute(select(UsageRollup)).scalars()
    assert (rollup.quantity, rollup.events, rollup.day) == (12, 3, long_ago.date())
    keys = db.session.execute(select(UsageEvent.idempotency_key)).scalars().all()
    assert keys == ["recent"]
    assert db.session.execute(select(func.sum(UsageAggregate.consumed))).scalar() == (
        consumed_before
    )


def test_a_second_batch_adds_to_the_same_day(client, buyer, plans):
    subscribe(buyer, plans.basic)
    long_ago = utcnow() - LEDGER_RETENTION - timedelta(days=40)
    for key in ("a", "b"):
        track(client, buyer, 2, key=key)
        db.session.execute(
            update(UsageEvent)
            .where(UsageEvent.idempotency_key == key)
            .values(created_at=long_ago, occurred_at=long_ago, period_end=long_ago)
        )
        db.session.commit()
        roll_up_ledger(db.session())
        db.session.commit()
    rollup = db.session.execute(select(UsageRollup)).scalar_one()
    assert (rollup.quantity, rollup.events) == (4, 2)
