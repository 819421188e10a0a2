"""Finding checkouts a webhook never settled, so they can be settled by asking Stripe.

Webhooks are the fast path, not the only one: an endpoint misconfigured, an outage longer than
Stripe's retries, an event lost between us and the worker — and a buyer would wait forever in
`processing` or `requires_action`; a lost `checkout.prepare` or `checkout.confirm` message
would leave a checkout `pending` or `processing` the same way. The beat job
(`maintenance.reconcile_stuck_checkouts`) claims checkouts sitting in those states, oldest-seen
first, and hands each to `checkout.reconcile`, which prepares a `pending` one again, re-sends a
confirmation Stripe never received, or else retrieves the intent (and subscription) from Stripe
and applies it through the same `stripe_sync` functions the webhooks use.
https://docs.stripe.com/webhooks#handle-events-asynchronously
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models import CheckoutSession
from models.base import utcnow
from models.checkout import PENDING, PROCESSING, REQUIRES_ACTION

# `pending`: prepare never ran or kept failing; `processing`: confirmation or webhook lost;
# `requires_action`: the buyer authenticated but no webhook told us.
STUCK_STATUSES = (PENDING, PROCESSING, REQUIRES_ACTION)
# A card payment settles within seconds and its webhook follows at once; a checkout that has
# not changed (nor been looked at) for this long is worth a question to Stripe.
STUCK_AFTER_SECONDS = 120
# Checkouts asked about per run (Stripe's sandbox allows 25 requests/s; the run is once a
# minute).
BATCH_SIZE = 100


def stuck_checkout_ids(
    session: Session,
    *,
    older_than_seconds: float = STUCK_AFTER_SECONDS,
    limit: int = BATCH_SIZE,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Claim the next batch of stuck checkouts, least recently seen first.

    A checkout qualifies when it has neither changed nor been handed out for
    `older_than_seconds`. The batch is stamped `reconciled_at = now`, which sends it to the
    back of the queue: a run that cannot settle its 100 (Stripe still says "processing")
    leaves them for later and the next run serves the next 100, so every stuck checkout is
    reached. `SKIP LOCKED`: two concurrent runs claim different checkouts, and neither waits
    for a checkout a task is changing right now.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=older_than_seconds)
    last_seen = func.coalesce(CheckoutSession.reconciled_at, CheckoutSession.updated_at)
    ids = list(
        session.execute(
            select(CheckoutSession.id)
            .where(
                CheckoutSession.status.in_(STUCK_STATUSES),
                CheckoutSession.updated_at <= cutoff,
                _unseen_since(CheckoutSession.reconciled_at, cutoff),
            )
            .order_by(last_seen, CheckoutSession.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if ids:
        session.execute(
            update(CheckoutSession).where(CheckoutSession.id.in_(ids)).values(reconciled_at=now)
        )
    return ids


def _unseen_since(column: Any, cutoff: datetime) -> Any:
    return column.is_(None) | (column <= cutoff)
