"""Checkout in the SDK's dialect: create (waiting for the checkout to open), status, confirm."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from flask import Response, current_app
from pydantic import BaseModel, ConfigDict, Field

from app import settings_of
from app.api import json_response, parse_body
from app.auth import current_customer
from app.catalog import service as catalog
from app.checkout import service as checkout_service
from app.checkout.schemas import (
    EMAIL_PATTERN,
    CheckoutConfirm,
    CheckoutCreate,
    checkout_out,
)
from app.errors import ApiError, Conflict, ServiceUnavailable
from app.request_models import RequestModel
from app.versions import SDK_2026_01_01, RouteTranslator, register
from models import CheckoutSession, Product, ProductPrice

# The bottom sheet reads `clientSecret` from the create answer itself and sends no `Prefer`
# header, so create waits (at most this long) for `checkout.prepare` to open the checkout.
CREATE_WAIT_SECONDS = float(checkout_service.MAX_WAIT_SECONDS)

# Our checkout states onto the SDK's (pending/processing/completed/failed/expired).
SDK_STATUS = {
    "pending": "pending",
    "open": "pending",
    "processing": "processing",
    "requires_action": "processing",
    "succeeded": "completed",
    "failed": "failed",
    "expired": "expired",
    "canceled": "expired",
}


class NotSupported(ApiError):
    status = 400
    code = "not_supported"
    title = "Not supported"


class CheckoutNotReady(ServiceUnavailable):
    code = "checkout_not_ready"
    title = "Checkout not ready"


class CheckoutNotOpen(Conflict):
    code = "checkout_not_open"
    title = "Checkout cannot be paid"


class SdkCheckoutCustomer(RequestModel):
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    name: str | None = Field(default=None, max_length=255)
    # Accepted, not stored: tax ids are not collected yet.
    taxId: str | None = Field(default=None, max_length=100)


class SdkCheckoutCreate(RequestModel):
    """The bottom sheet's and the modal's `POST /v1/checkout/create` bodies (one superset)."""

    priceId: str = Field(min_length=1, max_length=64)
    customerEmail: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    customerName: str | None = Field(default=None, max_length=255)
    customer: SdkCheckoutCustomer | None = None
    existingSubscriptionId: str | None = Field(default=None, max_length=64)
    couponCode: str | None = Field(default=None, max_length=100)
    metadata: dict[str, str] | None = None
    mode: Literal["embedded", "redirect"] | None = None
    # Only meaningful for redirect mode, which is refused; accepted for embedded.
    successUrl: str | None = Field(default=None, max_length=2000)
    cancelUrl: str | None = Field(default=None, max_length=2000)
    # Accepted; checkouts are charged in the price's own currency (`checkoutMode: standard`).
    adaptivePricing: bool | None = None


def _refuse_unsupported(body: SdkCheckoutCreate) -> None:
    if body.couponCode:
        raise NotSupported("Coupons are not supported yet.", code="coupon_not_supported")
    if body.existingSubscriptionId:
        raise NotSupported(
            "Plan changes go through the billing portal (POST /v1/portal-session).",
            code="plan_change_not_supported",
        )
    if body.mode == "redirect":
        raise NotSupported(
            "Redirect checkouts are not supported; use the embedded checkout.",
            code="redirect_not_supported",
        )


def _our_create(body: SdkCheckoutCreate) -> CheckoutCreate:
    customer = body.customer or SdkCheckoutCustomer()
    return CheckoutCreate(
        price_id=body.priceId,
        customer_email=body.customerEmail or customer.email,
        customer_name=body.customerName or customer.name,
        metadata=body.metadata or {},
    )


class SdkCheckoutProduct(BaseModel):
    name: str
    interval: Literal["day", "week", "month", "year"] | None
    features: list[str]


class SdkCheckoutCustomerOut(BaseModel):
    email: str | None
    name: str | None


class SdkCheckoutSession(BaseModel):
    """CheckoutSession and CheckoutSessionDetails of the React SDK, next to our Checkout."""

    model_config = ConfigDict(extra="allow")

    id: str
    clientSecret: str | None
    amount: int
    currency: str
    product: SdkCheckoutProduct
    customer: SdkCheckoutCustomerOut
    proration: dict[str, Any] | None
    stripeAccountId: str | None
    stripePublishableKey: str
    url: str | None
    expiresAt: datetime
    status: Literal["pending", "processing", "completed", "failed", "expired"]
    state: str = Field(description="The checkout's own status (2026-11-27's `status`).")
    priceId: str
    totalAmount: int
    couponCode: str | None
    discountAmount: int
    taxAmount: int
    checkoutMode: Literal["standard", "adaptive", "free"]


def _product_and_price(checkout: CheckoutSession) -> tuple[Product, ProductPrice | None]:
    product = catalog.get_product(checkout.organization_id, checkout.product_id)
    return product, next((p for p in product.prices if p.id == checkout.price_id), None)


def checkout_session(checkout: CheckoutSession) -> dict[str, Any]:
    """The checkout as the SDK reads it, with every field of 2026-11-27's Checkout beside it."""
    product, price = _product_and_price(checkout)
    ours = checkout_out(checkout, checkout_service.subscription_of(checkout)).model_dump(
        mode="json"
    )
    sdk = SdkCheckoutSession(
        id=str(checkout.id),
        clientSecret=ours["client_secret"],
        amount=checkout.amount,
        currency=checkout.currency,
        product=SdkCheckoutProduct(
            name=product.name,
            interval=price.interval if price else None,
            features=[f.name for f in product.features],
        ),
        customer=SdkCheckoutCustomerOut(email=checkout.customer_email, name=checkout.customer_name),
        proration=None,
        # Payments are the platform's own (no Connect account): Stripe.js starts with our key.
        stripeAccountId=None,
        stripePublishableKey=settings_of(current_app).stripe_publishable_key,
        url=None,
        expiresAt=checkout.expires_at,
        status=SDK_STATUS[checkout.status],
        state=checkout.status,
        priceId=str(checkout.price_id),
        totalAmount=checkout.amount,
        couponCode=None,
        discountAmount=0,
        taxAmount=0,
        checkoutMode="free" if checkout.amount == 0 else "standard",
    )
    rendered: dict[str, Any] = {**ours, **sdk.model_dump(mode="json")}
    return rendered


def _open_checkout(checkout_id: uuid.UUID) -> CheckoutSession:
    """The checkout once open, after a bounded wait for `checkout.prepare`; else an error."""
    principal = current_customer()
    checkout = checkout_service.get_customer_checkout(principal, checkout_id)
    if checkout.status == "pending":
        checkout = checkout_service.wait_while_pending(checkout, CREATE_WAIT_SECONDS)
    if checkout.status == "pending":
        raise CheckoutNotReady(
            "The checkout is still being prepared with Stripe; retry the same request.",
            headers={"Retry-After": "1"},
        )
    if checkout_out(checkout, None).client_secret is None:
        reason = (checkout.last_error or {}).get("message") or f"it is {checkout.status}"
        raise CheckoutNotOpen(f"This checkout cannot be paid: {reason}.")
    return checkout


def _serve_create_checkout(handler: Callable[..., Any]) -> Response:
    body = parse_body(SdkCheckoutCreate)
    assert isinstance(body, SdkCheckoutCreate)
    _refuse_unsupported(body)
    response = handler(body=_our_create(body))
    created = json.loads(response.get_data())
    checkout = _open_checkout(uuid.UUID(created["id"]))
    status = 200 if response.status_code == 200 else 201
    return json_response(checkout_session(checkout), status)


register(
    SDK_2026_01_01,
    "checkout.create_checkout",
    RouteTranslator(
        serve=_serve_create_checkout,
        body=SdkCheckoutCreate,
        responses={201: SdkCheckoutSession, 200: SdkCheckoutSession},
        errors={
            400: "validation_error",
            404: "price_not_found",
            409: "already_subscribed",
            429: "rate_limited",
            503: "checkout_not_ready",
        },
    ),
)


def _serve_checkout_status(handler: Callable[..., Any]) -> Response:
    response: Response = handler()
    if response.status_code != 200:
        return response  # 304 Not Modified: same ETag, nothing to render
    checkout_id = uuid.UUID(json.loads(response.get_data())["id"])
    checkout = checkout_service.get_customer_checkout(current_customer(), checkout_id)
    rendered = json_response(checkout_session(checkout), 200)
    for name in ("ETag", "Cache-Control"):
        if name in response.headers:
            rendered.headers[name] = response.headers[name]
    return rendered


register(
    SDK_2026_01_01,
    "checkout.checkout_status",
    RouteTranslator(serve=_serve_checkout_status, responses={200: SdkCheckoutSession}),
)


class SdkCheckoutConfirm(RequestModel):
    paymentMethodId: str = Field(pattern=r"^pm_[A-Za-z0-9_]{1,250}$")


class SdkConfirmOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    success: bool
    subscriptionId: str | None
    status: Literal["active", "trialing"]
    message: str
    checkoutId: str
    state: str


def _serve_confirm(handler: Callable[..., Any]) -> Response:
    body = parse_body(SdkCheckoutConfirm)
    assert isinstance(body, SdkCheckoutConfirm)
    response = handler(body=CheckoutConfirm(payment_method_id=body.paymentMethodId))
    confirmed = json.loads(response.get_data())
    checkout = checkout_service.get_customer_checkout(
        current_customer(), uuid.UUID(confirmed["id"])
    )
    subscription = checkout_service.subscription_of(checkout)
    _product, price = _product_and_price(checkout)
    # The charge runs in the background: `success` means "accepted", and `status` is what the
    # subscription will be once it succeeds; the outcome arrives by status, stream or websocket.
    expected = "trialing" if price is not None and price.trial_period_days else "active"
    answer = SdkConfirmOut(
        success=True,
        subscriptionId=str(subscription.id) if subscription is not None else None,
        status=expected,
        message=(
            "Payment submitted; it is being processed. Follow "
            f"GET /v1/checkout/{checkout.id}/status for the outcome."
        ),
        checkoutId=str(checkout.id),
        state=checkout.status,
    )
    return json_response({**confirmed, **answer.model_dump(mode="json")}, response.status_code)


register(
    SDK_2026_01_01,
    "checkout.confirm_checkout",
    RouteTranslator(
        serve=_serve_confirm,
        body=SdkCheckoutConfirm,
        responses={202: SdkConfirmOut},
        errors={
            400: "validation_error",
            404: "checkout_not_found",
            409: "checkout_not_confirmable",
            410: "checkout_expired",
        },
    ),
)
