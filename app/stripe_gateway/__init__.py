"""The only package that talks to Stripe.

Every call goes through one `stripe.StripeClient` per process (no global `stripe.api_key`), with
the API version pinned in configuration, explicit connect/read timeouts and an explicit
`max_network_retries`. Every write carries a deterministic idempotency key derived from our own
ids, so a retried task (or a library retry after a timeout) gets Stripe's stored answer instead
of making a second object (https://docs.stripe.com/api/idempotent_requests). Every object we
create carries `billingos_organization_id` metadata, and `billingos_checkout_id` when a checkout
caused it, so any Stripe object can be traced back to our rows.

Callers never see `stripe` exceptions: they get the small vocabulary below and decide from it
whether to retry (`TransientStripeError`) or record a permanent outcome (`PaymentDeclined`,
`InvalidStripeRequest`).

`StripeGateway` is assembled from one class of calls per domain (customers, payments, billing,
events); add a method to the module of its domain.
"""

from app.stripe_gateway.errors import (
    InvalidStripeRequest,
    PaymentDeclined,
    StripeGatewayError,
    TransientStripeError,
    translate_error,
)
from app.stripe_gateway.gateway import StripeGateway, get_gateway
from app.stripe_gateway.metadata import (
    CARD_PAYMENT_METHOD_TYPES,
    CHECKOUT_METADATA,
    CUSTOMER_METADATA,
    ORGANIZATION_METADATA,
    PRICE_METADATA,
    PRODUCT_METADATA,
    REFETCHABLE_OBJECT_TYPES,
    SUBSCRIPTION_METADATA,
    customer_create_key,
    payment_intent_id_from_client_secret,
    prepare_key,
)

__all__ = [
    "CARD_PAYMENT_METHOD_TYPES",
    "CHECKOUT_METADATA",
    "CUSTOMER_METADATA",
    "ORGANIZATION_METADATA",
    "PRICE_METADATA",
    "PRODUCT_METADATA",
    "REFETCHABLE_OBJECT_TYPES",
    "SUBSCRIPTION_METADATA",
    "InvalidStripeRequest",
    "PaymentDeclined",
    "StripeGateway",
    "StripeGatewayError",
    "TransientStripeError",
    "customer_create_key",
    "get_gateway",
    "payment_intent_id_from_client_secret",
    "prepare_key",
    "translate_error",
]
