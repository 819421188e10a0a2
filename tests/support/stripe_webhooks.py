"""Stripe webhook deliveries as Stripe makes them: the event envelope and its signature header.

One copy for the tests and the bench harness (which sends thousands of them).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import stripe


def envelope(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A Stripe event envelope (https://docs.stripe.com/api/events/object) around `obj`."""
    return {
        "id": event_id or f"evt_test_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": stripe.api_version,
        "created": created if created is not None else int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
