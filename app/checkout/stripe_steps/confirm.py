"""Confirm: the buyer's payment method confirmed on the checkout's intent; and the checkout
refreshed from what Stripe holds."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from app.checkout.stripe_steps.attempts import (
    MAX_ATTEMPTS,
    _lock,
    _unavailable,
)
from app.db import db
from app.stripe_gateway import (
    InvalidStripeRequest,
    PaymentDeclined,
    get_gateway,
)
from app.stripe_keys import with_renewable_key
from app.stripe_sync import (
    apply_payment_intent,
    apply_setup_intent,
    apply_subscription,
    as_dict,
)
from models import CheckoutSession
from models.checkout import FAILED, PROCESSING


def confirm_checkout(
    checkout_id: uuid.UUID,
    confirmation: int,
    *,
    payment_method: str | None = None,
    confirmation_token: str | None = None,
) -> None:
    """Confirm a `processing` checkout's intent with the buyer's payment method.

    `confirmation` numbers the buyer's confirmations of this checkout (the checkout version at
    which it entered `processing`): retries of one confirmation share the idempotency key
    `checkout:{id}:confirm:{confirmation}`; a new card after a decline gets a new one.
    """
    with db.transaction() as session:
        checkout = _lock(session, checkout_id)
        if checkout is None or checkout.status != PROCESSING:
            return
        checkout.confirm_attempts += 1
        if checkout.confirm_attempts > MAX_ATTEMPTS:
            checkout.transition(FAILED, last_error=_unavailable())
            return
        intent_type = checkout.intent_type
        payment_intent_id = checkout.stripe_payment_intent_id
        setup_intent_id = checkout.stripe_setup_intent_id
    gateway = get_gateway()
    # Renewed only after a failure Stripe stored under it (app/stripe_keys.py): a replayed 500
    # would otherwise fail the buyer's confirmation on every retry.
    scope = f"checkout:{checkout_id}:confirm:{confirmation}"
    intent: Any = None
    refusal: dict[str, Any] | None = None
    try:
        if intent_type == "setup" and setup_intent_id:
            setup_id = setup_intent_id
            intent = with_renewable_key(
                scope,
                lambda key: gateway.confirm_setup_intent(
                    setup_id,
                    idempotency_key=key,
                    payment_method=payment_method,
                    confirmation_token=confirmation_token,
                ),
            )
        elif payment_intent_id:
            payment_id = payment_intent_id
            intent = with_renewable_key(
                scope,
                lambda key: gateway.confirm_payment_intent(
                    payment_id,
                    idempotency_key=key,
                    payment_method=payment_method,
                    confirmation_token=confirmation_token,
                ),
            )
        else:
            refusal = {
                "code": "checkout_not_confirmable",
                "decline_code": None,
                "message": "This checkout has nothing to confirm.",
            }
    except PaymentDeclined as declined:
        intent = declined.stripe_object
        refusal = declined.as_checkout_error()
    except InvalidStripeRequest as invalid:
        # E.g. the intent was already confirmed with Stripe.js (the 3-D Secure path) or the
        # payment method is unusable: Stripe's current view of the intent decides below.
        intent = invalid.stripe_object
        refusal = {"code": invalid.code, "decline_code": None, "message": invalid.message}
    refresh_checkout(checkout_id, intent=intent, refusal=refusal)


def refresh_checkout(
    checkout_id: uuid.UUID,
    *,
    intent: Any = None,
    refusal: dict[str, Any] | None = None,
) -> None:
    """Apply Stripe's current view of a checkout's intent (and subscription) to our rows.

    `intent` is an intent Stripe just returned (saves a round trip); otherwise it is fetched.
    `refusal` is the error Stripe answered a confirmation with: if Stripe's objects do not move
    the checkout out of `processing`, the checkout fails with it.

    The reconciler calls this for checkouts stuck in `processing` (a lost webhook or task).
    """
    with db.transaction() as session:
        checkout = session.get(CheckoutSession, checkout_id)
        if checkout is None:
            return
        intent_type = checkout.intent_type
        payment_intent_id = checkout.stripe_payment_intent_id
        setup_intent_id = checkout.stripe_setup_intent_id
        subscription_id = checkout.stripe_subscription_id
    if intent is not None and not isinstance(intent, dict):
        intent = as_dict(intent)
    if intent is None:
        intent = _current_intent(intent_type, payment_intent_id, setup_intent_id)
    gateway = get_gateway()
    subscription = None
    if subscription_id is not None and (intent is None or intent.get("status") == "succeeded"):
        subscription = gateway.retrieve_subscription(subscription_id)
    with db.transaction() as session:
        if intent is not None:
            if intent.get("object") == "setup_intent":
                apply_setup_intent(session, intent)
            else:
                apply_payment_intent(session, intent)
        if subscription is not None:
            apply_subscription(session, subscription)
        checkout = _lock(session, checkout_id)
        if checkout is not None and refusal is not None and checkout.status == PROCESSING:
            checkout.transition(FAILED, next_action=None, last_error=refusal)


def _current_intent(
    intent_type: str | None, payment_intent_id: str | None, setup_intent_id: str | None
) -> Mapping[str, Any] | None:
    """The checkout's intent as Stripe has it now (None while it has none)."""
    gateway = get_gateway()
    if intent_type == "setup" and setup_intent_id:
        return as_dict(gateway.retrieve_setup_intent(setup_intent_id))
    if payment_intent_id:
        return as_dict(gateway.retrieve_payment_intent(payment_intent_id))
    return None
