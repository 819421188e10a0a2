"""Subscriptions, invoices and the billing portal."""

from __future__ import annotations

import uuid

import stripe
from stripe.params import (
    SubscriptionCancelParams,
    SubscriptionCreateParams,
    SubscriptionUpdateParams,
)

from app.stripe_gateway.client import GatewayClient
from app.stripe_gateway.metadata import (
    CARD_PAYMENT_METHOD_TYPES,
    CHECKOUT_METADATA,
    CUSTOMER_METADATA,
    PRICE_METADATA,
    SUBSCRIPTION_METADATA,
    _metadata,
    prepare_key,
)


class BillingCalls(GatewayClient):
    # ------------------------------------------------------------------ subscriptions

    def create_subscription(
        self,
        *,
        idempotency_key: str | None = None,
        checkout_id: uuid.UUID,
        organization_id: uuid.UUID,
        stripe_customer_id: str,
        stripe_price_id: str,
        quantity: int = 1,
        trial_period_days: int | None = None,
    ) -> stripe.Subscription:
        """The subscription of a recurring checkout (`checkout:{id}:prepare`).

        Without a trial: `payment_behavior=default_incomplete` leaves it `incomplete` with an
        open first invoice whose `confirmation_secret` the buyer confirms; the card is then
        saved on the subscription (https://docs.stripe.com/billing/subscriptions/build-subscriptions).
        With a trial: it starts `trialing` and its `pending_setup_intent` collects the card
        without a charge (https://docs.stripe.com/billing/subscriptions/trials).
        """
        params: SubscriptionCreateParams = {
            "customer": stripe_customer_id,
            "items": [{"price": stripe_price_id, "quantity": quantity}],
            "payment_behavior": "default_incomplete",
            "payment_settings": {
                "save_default_payment_method": "on_subscription",
                "payment_method_types": list(CARD_PAYMENT_METHOD_TYPES),
            },
            "metadata": _metadata(organization_id, **{CHECKOUT_METADATA: str(checkout_id)}),
        }
        if trial_period_days:
            params["trial_period_days"] = trial_period_days
            params["expand"] = ["pending_setup_intent", "latest_invoice"]
        else:
            params["expand"] = ["latest_invoice.confirmation_secret"]
        return self._call(
            lambda: self.client.v1.subscriptions.create(
                params=params,
                options={"idempotency_key": idempotency_key or prepare_key(checkout_id)},
            )
        )

    def retrieve_subscription(
        self, stripe_subscription_id: str, *, expand: list[str] | None = None
    ) -> stripe.Subscription:
        return self._call(
            lambda: self.client.v1.subscriptions.retrieve(
                stripe_subscription_id, params={"expand": expand} if expand else None
            )
        )

    def update_subscription(
        self,
        stripe_subscription_id: str,
        params: SubscriptionUpdateParams,
        *,
        idempotency_key: str,
    ) -> stripe.Subscription:
        return self._call(
            lambda: self.client.v1.subscriptions.update(
                stripe_subscription_id, params=params, options={"idempotency_key": idempotency_key}
            )
        )

    def cancel_subscription(
        self, stripe_subscription_id: str, *, idempotency_key: str, comment: str | None = None
    ) -> stripe.Subscription:
        """Cancel at once; `comment` lands in `cancellation_details` (and its webhooks)."""
        params: SubscriptionCancelParams = {}
        if comment:
            params["cancellation_details"] = {"comment": comment}
        return self._call(
            lambda: self.client.v1.subscriptions.cancel(
                stripe_subscription_id, params=params, options={"idempotency_key": idempotency_key}
            )
        )

    # ------------------------------------------------------------------ invoices

    def retrieve_invoice(
        self, stripe_invoice_id: str, *, expand: list[str] | None = None
    ) -> stripe.Invoice:
        return self._call(
            lambda: self.client.v1.invoices.retrieve(
                stripe_invoice_id, params={"expand": expand} if expand else None
            )
        )

    def void_invoice(self, stripe_invoice_id: str, *, idempotency_key: str) -> stripe.Invoice:
        """Void an open invoice; Stripe cancels its PaymentIntent, so it can no longer be paid.

        Canceling a subscription does not do this: its open invoice stays payable.
        """
        return self._call(
            lambda: self.client.v1.invoices.void_invoice(
                stripe_invoice_id, options={"idempotency_key": idempotency_key}
            )
        )

    # ================================================================== billing portal and
    # subscription management (issue 7) — append methods below this line.

    def create_direct_subscription(
        self,
        *,
        idempotency_key: str,
        organization_id: uuid.UUID,
        customer_id: uuid.UUID,
        price_id: uuid.UUID,
        stripe_customer_id: str,
        stripe_price_id: str,
        trial_period_days: int | None,
        subscription_id: uuid.UUID | None = None,
    ) -> stripe.Subscription:
        """A subscription that owes nothing today, created without a checkout (issue 7).

        `subscription_id` is our row made for it beforehand (metadata `billingos_subscription_id`).

        A free price: Stripe finalizes a $0 first invoice as paid and the subscription is
        `active` at once. A trial without a card: `trialing`, and when the trial ends with no
        payment method Stripe cancels it instead of billing it
        (https://docs.stripe.com/billing/subscriptions/trials#create-free-trials-without-payment).
        """
        params: SubscriptionCreateParams = {
            "customer": stripe_customer_id,
            "items": [{"price": stripe_price_id}],
            "payment_settings": {"payment_method_types": list(CARD_PAYMENT_METHOD_TYPES)},
            "metadata": _metadata(
                organization_id,
                **{
                    CUSTOMER_METADATA: str(customer_id),
                    PRICE_METADATA: str(price_id),
                    SUBSCRIPTION_METADATA: str(subscription_id) if subscription_id else None,
                },
            ),
        }
        if trial_period_days:
            params["trial_period_days"] = trial_period_days
            params["trial_settings"] = {"end_behavior": {"missing_payment_method": "cancel"}}
        return self._call(
            lambda: self.client.v1.subscriptions.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )

    def create_billing_portal_session(
        self, *, stripe_customer_id: str, return_url: str | None, idempotency_key: str
    ) -> stripe.billing_portal.Session:
        """A Stripe-hosted portal session where the customer manages cards, plans and invoices.

        https://docs.stripe.com/customer-management/integrate-customer-portal — the session URL
        is short-lived and single-customer, so one is created per request.
        """
        params: stripe.params.billing_portal.SessionCreateParams = {"customer": stripe_customer_id}
        if return_url:
            params["return_url"] = return_url
        return self._call(
            lambda: self.client.v1.billing_portal.sessions.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )
