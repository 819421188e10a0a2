"""The Checkout object of API.md, as the SDK and the merchant see it.

The real-time channels publish exactly `checkout_out(...)` (the status endpoint's body), so a
client can treat a websocket frame, an SSE event and a poll the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from app.subscriptions.schemas import SubscriptionOut, subscription_out
from models import CheckoutSession, Subscription

CheckoutStatus = Literal[
    "pending", "open", "processing", "requires_action", "succeeded", "failed", "expired", "canceled"
]


class CheckoutError(BaseModel):
    code: str | None
    decline_code: str | None
    message: str | None


class CheckoutBase(BaseModel):
    id: str
    status: CheckoutStatus
    version: int
    price_id: str
    product_id: str
    amount: int
    currency: str
    intent_type: Literal["payment", "setup"] | None
    next_action: dict[str, Any] | None
    last_error: CheckoutError | None
    subscription: SubscriptionOut | None
    customer_email: str | None
    expires_at: datetime
    created_at: datetime
    updated_at: datetime


class CheckoutOut(CheckoutBase):
    """What the SDK sees: includes the client secret once the checkout is open."""

    client_secret: str | None


class MerchantCheckoutOut(CheckoutBase):
    """What the merchant's server sees: never the client secret."""

    customer_id: str
    customer_external_id: str | None = None


def _common(checkout: CheckoutSession, subscription: Subscription | None) -> dict[str, Any]:
    return {
        "id": str(checkout.id),
        "status": checkout.status,
        "version": checkout.version,
        "price_id": str(checkout.price_id),
        "product_id": str(checkout.product_id),
        "amount": checkout.amount,
        "currency": checkout.currency,
        "intent_type": checkout.intent_type,
        "next_action": checkout.next_action,
        "last_error": checkout.last_error,
        "subscription": subscription_out(subscription) if subscription is not None else None,
        "customer_email": checkout.customer_email,
        "expires_at": checkout.expires_at,
        "created_at": checkout.created_at,
        "updated_at": checkout.updated_at,
    }


def checkout_out(checkout: CheckoutSession, subscription: Subscription | None) -> CheckoutOut:
    # The client secret is withheld once the checkout can no longer be paid.
    secret = (
        None if checkout.status in ("pending", "expired", "canceled") else checkout.client_secret
    )
    return CheckoutOut(client_secret=secret, **_common(checkout, subscription))


def merchant_checkout_out(
    checkout: CheckoutSession, subscription: Subscription | None, external_id: str | None = None
) -> MerchantCheckoutOut:
    return MerchantCheckoutOut(
        customer_id=str(checkout.customer_id),
        customer_external_id=external_id,
        **_common(checkout, subscription),
    )
