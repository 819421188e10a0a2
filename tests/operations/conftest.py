"""Rows the operations tests start from."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from app.db import db
from models import CheckoutSession, StripeEvent
from models.base import utcnow
from tests.factories import Buyer
from tests.support.billing import open_checkout_row


def stored_event(
    status: str, received_ago: timedelta, payload: dict[str, Any] | None = None
) -> str:
    """An inbox row, `received_ago` old; its payload names no object of ours."""
    event_id = f"evt_{secrets.token_hex(12)}"
    payload = {"id": event_id, "object": "event", "type": "customer.updated", **(payload or {})}
    db.session.add(
        StripeEvent(
            stripe_event_id=event_id,
            type=payload["type"],
            payload=payload,
            status=status,
            received_at=utcnow() - received_ago,
        )
    )
    db.session.commit()
    return event_id


def checkout_row(
    buyer: Buyer,
    price: Any,
    status: str = "open",
    *,
    client_secret: str | None = None,
    completed_at: datetime | None = None,
) -> CheckoutSession:
    """A committed checkout in `status` (set directly, as a test's starting point)."""
    checkout = open_checkout_row(buyer, price)
    checkout.status = status
    checkout.client_secret = client_secret
    checkout.completed_at = completed_at
    db.session.commit()
    return checkout
