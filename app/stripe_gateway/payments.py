"""PaymentIntents, SetupIntents, charges and refunds."""

from __future__ import annotations

import uuid

import stripe
from stripe.params import (
    PaymentIntentCancelParams,
    PaymentIntentConfirmParams,
    PaymentIntentCreateParams,
    RefundCreateParams,
    SetupIntentConfirmParams,
)

from app.stripe_gateway.client import GatewayClient
from app.stripe_gateway.metadata import (
    CHECKOUT_METADATA,
    _metadata,
    prepare_key,
)


class PaymentCalls(GatewayClient):
    # ------------------------------------------------------------------ payment intents

    def create_payment_intent(
        self,
        *,
        idempotency_key: str | None = None,
        checkout_id: uuid.UUID,
        organization_id: uuid.UUID,
        stripe_customer_id: str,
        amount: int,
        currency: str,
        description: str | None = None,
        receipt_email: str | None = None,
    ) -> stripe.PaymentIntent:
        """The PaymentIntent of a one-time checkout (`checkout:{id}:prepare`)."""
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency,
            "customer": stripe_customer_id,
            # The Payment Element offers what the merchant's dashboard enables, minus
            # anything that would redirect the buyer out of the app.
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "metadata": _metadata(organization_id, **{CHECKOUT_METADATA: str(checkout_id)}),
        }
        if description:
            params["description"] = description
        if receipt_email:
            params["receipt_email"] = receipt_email
        return self._call(
            lambda: self.client.v1.payment_intents.create(
                params=params,
                options={"idempotency_key": idempotency_key or prepare_key(checkout_id)},
            )
        )

    def retrieve_payment_intent(self, stripe_payment_intent_id: str) -> stripe.PaymentIntent:
        return self._call(lambda: self.client.v1.payment_intents.retrieve(stripe_payment_intent_id))

    def confirm_payment_intent(
        self,
        stripe_payment_intent_id: str,
        *,
        idempotency_key: str,
        payment_method: str | None = None,
        confirmation_token: str | None = None,
    ) -> stripe.PaymentIntent:
        """Confirm server-side; a decline raises PaymentDeclined carrying the PaymentIntent."""
        params: PaymentIntentConfirmParams = {}
        if confirmation_token:
            params["confirmation_token"] = confirmation_token
        elif payment_method:
            params["payment_method"] = payment_method
        return self._call(
            lambda: self.client.v1.payment_intents.confirm(
                stripe_payment_intent_id,
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        )

    def cancel_payment_intent(
        self, stripe_payment_intent_id: str, *, idempotency_key: str, reason: str = "abandoned"
    ) -> stripe.PaymentIntent:
        params: PaymentIntentCancelParams = {"cancellation_reason": reason}
        return self._call(
            lambda: self.client.v1.payment_intents.cancel(
                stripe_payment_intent_id,
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        )

    # ------------------------------------------------------------------ setup intents

    def retrieve_setup_intent(self, stripe_setup_intent_id: str) -> stripe.SetupIntent:
        return self._call(lambda: self.client.v1.setup_intents.retrieve(stripe_setup_intent_id))

    def confirm_setup_intent(
        self,
        stripe_setup_intent_id: str,
        *,
        idempotency_key: str,
        payment_method: str | None = None,
        confirmation_token: str | None = None,
    ) -> stripe.SetupIntent:
        params: SetupIntentConfirmParams = {}
        if confirmation_token:
            params["confirmation_token"] = confirmation_token
        elif payment_method:
            params["payment_method"] = payment_method
        return self._call(
            lambda: self.client.v1.setup_intents.confirm(
                stripe_setup_intent_id,
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        )

    # ------------------------------------------------------------------ refunds

    def retrieve_charge(self, stripe_charge_id: str) -> stripe.Charge:
        return self._call(lambda: self.client.v1.charges.retrieve(stripe_charge_id))

    def refund_payment_intent(
        self, stripe_payment_intent_id: str, *, idempotency_key: str, reason: str, comment: str
    ) -> stripe.Refund:
        """Refund whatever is left of a payment (`reason` is Stripe's code, `comment` ours)."""
        params: RefundCreateParams = {
            "payment_intent": stripe_payment_intent_id,
            "reason": reason,
            "metadata": {"billingos_reason": comment},
        }
        return self._call(
            lambda: self.client.v1.refunds.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )
