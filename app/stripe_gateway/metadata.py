"""The metadata and idempotency keys that tie every Stripe object back to our rows."""

from __future__ import annotations

import uuid

ORGANIZATION_METADATA = "billingos_organization_id"
CHECKOUT_METADATA = "billingos_checkout_id"
CUSTOMER_METADATA = "billingos_customer_id"
PRODUCT_METADATA = "billingos_product_id"
PRICE_METADATA = "billingos_price_id"
SUBSCRIPTION_METADATA = "billingos_subscription_id"

# The object types `StripeGateway.retrieve_object` can fetch again at our API version.
REFETCHABLE_OBJECT_TYPES = frozenset(
    {
        "payment_intent",
        "setup_intent",
        "subscription",
        "invoice",
        "charge",
        "refund",
        "dispute",
        "checkout.session",
    }
)

# Which payment methods our intents accept: cards and the wallets that pay with one (Apple Pay,
# Google Pay). BillingOS confirms intents server-side and the embedded checkout never leaves
# the app, so no payment method may need a full-page redirect: Stripe refuses to confirm an
# intent that allows redirects unless a `return_url` comes with the confirmation. One-time
# PaymentIntents say so with `allow_redirects: never`; a subscription's invoices and its
# trial SetupIntent take their payment method types from `payment_settings`.
CARD_PAYMENT_METHOD_TYPES: list[str] = ["card"]


# --------------------------------------------------------------------------- error vocabulary


def payment_intent_id_from_client_secret(client_secret: str) -> str:
    """The PaymentIntent (or SetupIntent) id is the part of a client secret before `_secret_`."""
    return client_secret.split("_secret_", 1)[0]


def prepare_key(checkout_id: uuid.UUID) -> str:
    """The key of the intent (or subscription) a checkout creates."""
    return f"checkout:{checkout_id}:prepare"


def customer_create_key(customer_id: uuid.UUID) -> str:
    """Derived from the customer, not the checkout: two concurrent checkouts of the same buyer
    send the same request and get the same Stripe customer."""
    return f"customer:{customer_id}:create"


def _metadata(organization_id: uuid.UUID | str, **extra: str | None) -> dict[str, str]:
    metadata = {ORGANIZATION_METADATA: str(organization_id)}
    metadata.update({k: str(v) for k, v in extra.items() if v is not None})
    return metadata


# --------------------------------------------------------------------------- one per process
