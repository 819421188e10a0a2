"""Every intent BillingOS creates can be confirmed server-side with a card and no `return_url`.

Stripe refuses such a confirmation ("A `return_url` must be specified…") for an intent that
accepts redirect-based payment methods: the one-time PaymentIntent, the first invoice of a
subscription and the trial's SetupIntent are all made card/wallet-only.
"""

from __future__ import annotations

import uuid
from typing import Any

from app.stripe_gateway import StripeGateway, payment_intent_id_from_client_secret
from tests.gateway.conftest import new_customer


def _monthly_price(gateway: StripeGateway, organization_id: uuid.UUID) -> str:
    product = gateway.create_product(
        product_id=uuid.uuid4(), organization_id=organization_id, name="Pro", description=None
    )
    return gateway.create_price(
        price_id=uuid.uuid4(),
        organization_id=organization_id,
        stripe_product_id=product.id,
        amount=1500,
        currency="usd",
        interval="month",
    ).id


def test_one_time_payment_intent_confirms_without_return_url(gateway: StripeGateway) -> None:
    organization_id, checkout_id = uuid.uuid4(), uuid.uuid4()
    intent = gateway.create_payment_intent(
        checkout_id=checkout_id,
        organization_id=organization_id,
        stripe_customer_id=new_customer(gateway, organization_id),
        amount=2900,
        currency="usd",
    )
    assert intent.automatic_payment_methods is not None
    assert intent.automatic_payment_methods.allow_redirects == "never"
    confirmed = gateway.confirm_payment_intent(
        intent.id,
        idempotency_key=f"checkout:{checkout_id}:confirm:1",
        payment_method="pm_card_visa",
    )
    assert confirmed.status == "succeeded"


def test_first_invoice_of_a_subscription_confirms_without_return_url(
    gateway: StripeGateway,
) -> None:
    organization_id, checkout_id = uuid.uuid4(), uuid.uuid4()
    subscription = gateway.create_subscription(
        checkout_id=checkout_id,
        organization_id=organization_id,
        stripe_customer_id=new_customer(gateway, organization_id),
        stripe_price_id=_monthly_price(gateway, organization_id),
    )
    invoice: Any = subscription.latest_invoice
    secret = invoice.confirmation_secret.client_secret
    confirmed = gateway.confirm_payment_intent(
        payment_intent_id_from_client_secret(secret),
        idempotency_key=f"checkout:{checkout_id}:confirm:1",
        payment_method="pm_card_visa",
    )
    assert confirmed.status == "succeeded"
    assert gateway.retrieve_subscription(subscription.id).status == "active"


def test_trial_setup_intent_confirms_without_return_url(gateway: StripeGateway) -> None:
    organization_id, checkout_id = uuid.uuid4(), uuid.uuid4()
    subscription = gateway.create_subscription(
        checkout_id=checkout_id,
        organization_id=organization_id,
        stripe_customer_id=new_customer(gateway, organization_id),
        stripe_price_id=_monthly_price(gateway, organization_id),
        trial_period_days=14,
    )
    assert subscription.status == "trialing"
    setup_intent: Any = subscription.pending_setup_intent
    confirmed = gateway.confirm_setup_intent(
        setup_intent.id,
        idempotency_key=f"checkout:{checkout_id}:confirm:1",
        payment_method="pm_card_visa",
    )
    assert confirmed.status == "succeeded"
