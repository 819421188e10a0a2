"""Finding checkouts a webhook never settled, so they can be settled by asking Stripe.

Webhooks are the fast path, not the only one: an endpoint misconfigured, an outage longer than
Stripe's retries, an event lost between us and the worker — and a buyer would wait forever in
`processing` or `requires_action`. The beat job (`maintenance.reconcile_stuck_checkouts`) finds
checkouts sitting in those states and hands each to `checkout.reconcile`, which retrieves the
intent (and subscription) from Stripe and applies it through the same `stripe_sync` functions
the webhooks use. https://docs.stripe.com/webhooks#handle-events-asynchronously
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import CheckoutSession
from models.base import utcnow
from models.checkout import PROCESSING, REQUIRES_ACTION

STUCK_STATUSES = (PROCESSING, REQUIRES_ACTION)
# A card payment settles within seconds and its webhook follows at once; a checkout that has
# not changed for this long is worth a question to Stripe.
STUCK_AFTER_SECONDS = 120
# Checkouts asked about per run (Stripe's sandbox allows 25 requests/s; the run is once a
# minute). The least recently changed go first.
BATCH_SIZE = 100


def stuck_checkout_ids(
    session: Session,
    *,
    older_than_seconds: float = STUCK_AFTER_SECONDS,
    limit: int = BATCH_SIZE,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Checkouts in `processing`/`requires_action` unchanged for `older_than_seconds`."""
    cutoff = (now or utcnow()) - timedelta(seconds=older_than_seconds)
    return list(
        session.execute(
            select(CheckoutSession.id)
            .where(CheckoutSession.status.in_(STUCK_STATUSES), CheckoutSession.updated_at <= cutoff)
            .order_by(CheckoutSession.updated_at)
            .limit(limit)
        ).scalars()
    )
