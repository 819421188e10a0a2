"""Reconcile: a checkout Stripe may have moved without telling us is refreshed from Stripe."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from app.checkout.stripe_steps.confirm import _current_intent, confirm_checkout, refresh_checkout
from app.checkout.stripe_steps.prepare import prepare_checkout
from app.db import db
from models import CheckoutSession
from models.checkout import PENDING, PROCESSING

log = logging.getLogger(__name__)


def settle_stuck_checkout(checkout_id: uuid.UUID) -> None:
    """Drive a checkout the reconciler found unchanged for a while towards a final state.

    - `pending`: its `checkout.prepare` message was lost, or every run failed: prepare again,
      with the same idempotency keys (Stripe returns what an earlier run already made). Each
      run counts in `prepare_attempts`, so a Stripe that stays down ends it `failed`, and a
      permanent refusal ends it `failed` with Stripe's error at once.
    - `processing` while Stripe says nothing happened to the intent (no confirmation reached
      it: the `checkout.confirm` message was lost): send the buyer's confirmation again, under
      the same key `checkout:{id}:confirm:{confirmation}`; bounded by `confirm_attempts`.
    - otherwise: apply Stripe's current view (a lost webhook).
    """
    with db.transaction() as session:
        checkout = session.get(CheckoutSession, checkout_id)
        if checkout is None:
            return
        status = checkout.status
        confirmation = checkout.confirmation
        payment_method = checkout.confirm_payment_method
        confirmation_token = checkout.confirm_confirmation_token
        intent_type = checkout.intent_type
        payment_intent_id = checkout.stripe_payment_intent_id
        setup_intent_id = checkout.stripe_setup_intent_id
    if status == PENDING:
        prepare_checkout(checkout_id)
        return
    intent = _current_intent(intent_type, payment_intent_id, setup_intent_id)
    if status == PROCESSING and confirmation is not None and _never_confirmed(intent):
        log.info("checkout %s: its confirmation never reached Stripe; sending it", checkout_id)
        confirm_checkout(
            checkout_id,
            confirmation,
            payment_method=payment_method,
            confirmation_token=confirmation_token,
        )
        return
    refresh_checkout(checkout_id, intent=intent)


def _never_confirmed(intent: Any) -> bool:
    """Stripe's intent shows no confirmation attempt (or there is no intent to show one)."""
    if intent is None:
        return True
    if intent.get("status") == "requires_confirmation":
        return True
    error = intent.get("last_payment_error") or intent.get("last_setup_error")
    return intent.get("status") == "requires_payment_method" and not error
