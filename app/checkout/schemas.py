"""The Checkout object of the HTTP API (`/openapi.json`), as the SDK and the merchant see it.

The real-time channels publish exactly `checkout_out(...)` (the status endpoint's body), so a
client can treat a websocket frame, an SSE event and a poll the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.pagination import ListQuery
from app.request_models import RequestModel
from app.subscriptions.schemas import SubscriptionOut, subscription_out
from models import CheckoutSession, PaymentIntent, Subscription

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


# --------------------------------------------------------------------------- requests

# The same shape the session-token endpoint accepts.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,255}$"


class CheckoutCreate(RequestModel):
    price_id: str = Field(min_length=1, max_length=64, description="A price of an active product.")
    quantity: int = Field(default=1, ge=1, le=100)
    customer_email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    customer_name: str | None = Field(default=None, max_length=255)
    # Stripe's own metadata limits: 50 keys, 40-character keys, 500-character values.
    metadata: dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=500)]] = (
        Field(default_factory=dict, max_length=50)
    )


class CheckoutConfirm(RequestModel):
    payment_method_id: str | None = Field(default=None, pattern=r"^pm_[A-Za-z0-9_]{1,250}$")
    confirmation_token_id: str | None = Field(default=None, pattern=r"^ctoken_[A-Za-z0-9_]{1,250}$")
    customer_email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    customer_name: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def one_payment_method(self) -> CheckoutConfirm:
        if (self.payment_method_id is None) == (self.confirmation_token_id is None):
            raise ValueError("send exactly one of payment_method_id and confirmation_token_id")
        return self


class CheckoutListQuery(ListQuery):
    status: CheckoutStatus | None = None
    customer_external_id: str | None = Field(default=None, max_length=255)


class PaymentListQuery(ListQuery):
    status: str | None = Field(default=None, max_length=32)
    customer_external_id: str | None = Field(default=None, max_length=255)


# --------------------------------------------------------------------------- lists, payments


class MerchantCheckoutList(BaseModel):
    data: list[MerchantCheckoutOut]
    has_more: bool


class PaymentOut(BaseModel):
    """One row of the payment history: one Stripe PaymentIntent."""

    id: str
    stripe_payment_intent_id: str
    amount: int
    currency: str
    status: str
    amount_refunded: int
    # Stripe's status of a dispute of this payment (`needs_response`, `under_review`, `won`,
    # `lost`, …); null when the payment is not disputed.
    dispute_status: str | None = None
    last_error: CheckoutError | None
    checkout_id: str | None
    customer_id: str
    customer_external_id: str | None
    created_at: datetime
    succeeded_at: datetime | None


class PaymentList(BaseModel):
    data: list[PaymentOut]
    has_more: bool


def payment_out(payment: PaymentIntent, external_id: str | None) -> PaymentOut:
    return PaymentOut(
        id=str(payment.id),
        stripe_payment_intent_id=payment.stripe_payment_intent_id,
        amount=payment.amount,
        currency=payment.currency,
        status=payment.status,
        amount_refunded=payment.amount_refunded,
        dispute_status=payment.dispute_status,
        last_error=payment.last_error,
        checkout_id=str(payment.checkout_session_id) if payment.checkout_session_id else None,
        customer_id=str(payment.customer_id),
        customer_external_id=external_id,
        created_at=payment.created_at,
        succeeded_at=payment.succeeded_at,
    )
