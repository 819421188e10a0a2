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
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from models import CheckoutSession, SessionToken, StripeEvent
from models.base import utcnow
from models.checkout import FINISHED_STATUSES
from models.stripe_event import IGNORED, PROCESSED

BATCH_SIZE = 1000


def _batch_of(model: Any, *conditions: Any, batch_size: int) -> Any:
    """The ids of up to `batch_size` rows past their horizon, as a subquery."""
    return select(model.id).where(*conditions).limit(batch_size).scalar_subquery()


def _run(session: Session, statement: Any) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def prune_expired_session_tokens(
    session: Session,
    *,
    older_than_days: int,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> int:
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    batch = _batch_of(SessionToken, SessionToken.expires_at < cutoff, batch_size=batch_size)
    return _run(session, delete(SessionToken).where(SessionToken.id.in_(batch)))


def scrub_client_secrets(
    session: Session,
    *,
    older_than_days: int,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> int:
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    batch = _batch_of(
        CheckoutSession,
        CheckoutSession.client_secret.is_not(None),
        CheckoutSession.status.in_(FINISHED_STATUSES),
        CheckoutSession.completed_at < cutoff,
        batch_size=batch_size,
    )
    # No version bump and no real-time message: nothing a client can see changes (the API
    # stops showing a finished checkout's secret, which it no longer needs).
    return _run(
        session,
        update(CheckoutSession).where(CheckoutSession.id.in_(batch)).values(client_secret=None),
    )


def scrub_event_payloads(
    session: Session,
    *,
    older_than_days: int,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> int:
    now = now or utcnow()
    batch = _batch_of(
        StripeEvent,
        StripeEvent.payload_scrubbed_at.is_(None),
        StripeEvent.status.in_((PROCESSED, IGNORED)),
        StripeEvent.received_at < now - timedelta(days=older_than_days),
        batch_size=batch_size,
    )
    payload = StripeEvent.payload
    envelope = func.jsonb_build_object(
        *(part for key in ("id", "object", "type", "created") for part in (key, payload[key]))
    )
    return _run(
        session,
        update(StripeEvent)
        .where(StripeEvent.id.in_(batch))
        .values(payload=envelope, payload_scrubbed_at=now),
    )
