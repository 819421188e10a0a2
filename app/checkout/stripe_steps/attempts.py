"""What the steps share: the row lock, the attempt budget and giving up once it is spent."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import db
from models import CheckoutSession
from models.checkout import FAILED, PENDING, PROCESSING

# Runs of one task per checkout before it gives up (with backoff this spans about 15 s).
MAX_ATTEMPTS = 6

UNAVAILABLE_MESSAGE = "The payment provider could not be reached. Please try again."
# A checkout whose subscription could not be recorded because the buyer already holds a live
# subscription to the product (two checkouts with different idempotency keys raced).
ALREADY_SUBSCRIBED_ERROR = {
    "code": "already_subscribed",
    "decline_code": None,
    "message": "You already have an active subscription to this product.",
}

EXPIRABLE_STATUSES = ("pending", "open", "requires_action", "failed")


def _unavailable() -> dict[str, Any]:
    return {"code": "stripe_unavailable", "decline_code": None, "message": UNAVAILABLE_MESSAGE}


def _lock(session: Session, checkout_id: uuid.UUID) -> CheckoutSession | None:
    return session.execute(
        select(CheckoutSession)
        .where(CheckoutSession.id == checkout_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def give_up(checkout_id: uuid.UUID, stage: str) -> None:
    """After the last transient failure: show a clear error instead of hanging."""
    waiting_status = PENDING if stage == "prepare" else PROCESSING
    with db.transaction() as session:
        checkout = _lock(session, checkout_id)
        if checkout is not None and checkout.status == waiting_status:
            checkout.transition(FAILED, next_action=None, last_error=_unavailable())


def attempts(checkout_id: uuid.UUID, stage: str) -> int:
    column = (
        CheckoutSession.prepare_attempts if stage == "prepare" else CheckoutSession.confirm_attempts
    )
    with db.transaction() as session:
        value = session.execute(
            select(column).where(CheckoutSession.id == checkout_id)
        ).scalar_one_or_none()
    return int(value or 0)
