"""Retention: the database forgets what nobody needs, and holds no usable secret for long.

- Session tokens (stored as digests) are deleted some days after they expired: past expiry they
  authenticate nothing, and an expired token is answered the same way whether its row exists
  or not.
- A finished checkout's (succeeded, expired, canceled) client secret is cleared: it can never
  pay again, and it is the one credential that lets a browser act on the PaymentIntent.
- A processed (or ignored) inbox event's payload is reduced to its envelope (id, type,
  created): the full payload carries customer emails and client secrets. The row itself stays
  (it is what makes a repeated delivery a duplicate) until the inbox prune deletes it.

Every job works in bounded batches, touches only rows past their horizon, and is safe to run
twice or concurrently (a second run finds nothing left to do).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from models import CheckoutSession, SessionToken, StripeEvent
from models.base import utcnow
from models.checkout import FINISHED_STATUSES
from models.stripe_event import IGNORED, PROCESSED

BATCH_SIZE = 1000


def prune_expired_session_tokens(
    session: Session,
    *,
    older_than_days: int,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> int:
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    batch = (
        select(SessionToken.id)
        .where(SessionToken.expires_at < cutoff)
        .limit(batch_size)
        .scalar_subquery()
    )
    result = session.execute(
        delete(SessionToken)
        .where(SessionToken.id.in_(batch))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def scrub_client_secrets(
    session: Session,
    *,
    older_than_days: int,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> int:
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    batch = (
        select(CheckoutSession.id)
        .where(
            CheckoutSession.client_secret.is_not(None),
            CheckoutSession.status.in_(FINISHED_STATUSES),
            CheckoutSession.completed_at < cutoff,
        )
        .limit(batch_size)
        .scalar_subquery()
    )
    # No version bump and no real-time message: nothing a client can see changes (the API
    # stops showing a finished checkout's secret, which it no longer needs).
    result = session.execute(
        update(CheckoutSession)
        .where(CheckoutSession.id.in_(batch))
        .values(client_secret=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def scrub_event_payloads(
    session: Session,
    *,
    older_than_days: int,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> int:
    now = now or utcnow()
    cutoff = now - timedelta(days=older_than_days)
    batch = (
        select(StripeEvent.id)
        .where(
            StripeEvent.payload_scrubbed_at.is_(None),
            StripeEvent.status.in_((PROCESSED, IGNORED)),
            StripeEvent.received_at < cutoff,
        )
        .limit(batch_size)
        .scalar_subquery()
    )
    payload = StripeEvent.payload
    envelope = func.jsonb_build_object(
        "id",
        payload["id"],
        "object",
        payload["object"],
        "type",
        payload["type"],
        "created",
        payload["created"],
    )
    result = session.execute(
        update(StripeEvent)
        .where(StripeEvent.id.in_(batch))
        .values(payload=envelope, payload_scrubbed_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
