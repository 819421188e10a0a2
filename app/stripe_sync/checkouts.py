"""Checkout rows as the appliers move them: locking, errors, state changes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import CheckoutSession

log = logging.getLogger(__name__)


def checkout_error(error: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Stripe's `last_payment_error`/`last_setup_error`, reduced to the Checkout's `last_error`."""
    if not error:
        return None
    return {
        "code": error.get("code"),
        "decline_code": error.get("decline_code"),
        "message": error.get("message"),
    }


def move_checkout(checkout: CheckoutSession, to: str, **changes: Any) -> bool:
    """Apply news to a checkout if the lifecycle allows it; out-of-order news is dropped."""
    if checkout.status != to and not checkout.can_transition(to):
        log.info(
            "checkout %s: ignoring %s → %s (out of order or final)",
            checkout.id,
            checkout.status,
            to,
        )
        return False
    return checkout.transition(to, **changes)


def _lock_checkout(session: Session, checkout_id: uuid.UUID | None) -> CheckoutSession | None:
    if checkout_id is None:
        return None
    return session.execute(
        select(CheckoutSession)
        .where(CheckoutSession.id == checkout_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _recompute_entitlements(session: Session, customer_id: uuid.UUID) -> None:
    from app.entitlements.service import recompute_entitlements

    recompute_entitlements(session, customer_id)
