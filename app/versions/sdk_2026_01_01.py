"""API version 2026-01-01: the wire format of the existing SDKs, translated at the edge.

Each translator parses a request as `@billingos/sdk` / `@billingos/node` send it, runs the same
handler (or services) as 2026-11-27, and renders a superset of what those clients read: their
camelCase fields next to ours. Where a name collides (`status`), the SDK's value wins and ours
moves aside (`state`). Nothing here decides anything about a checkout, a token or an entitlement.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from flask import Response, current_app
from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from app import settings_of
from app.api import json_response, parse_body, parse_query
from app.auth import current_customer
from app.catalog import service as catalog
from app.catalog.schemas import ProductList
from app.checkout import service as checkout_service
from app.checkout.schemas import (
    EMAIL_PATTERN,
    CheckoutConfirm,
    CheckoutCreate,
    checkout_out,
)
from app.customers.schemas import CustomerIn
from app.db import db
from app.errors import ApiError, Conflict, ServiceUnavailable
from app.pagination import MAX_PAGE_SIZE, ListQuery
from app.request_models import QueryModel, RequestModel
from app.session_tokens.schemas import SessionTokenCreate
from app.subscriptions import service as subscriptions
from app.versions import SDK_2026_01_01, RouteTranslator, register
from models import CheckoutSession, Product, ProductPrice, Subscription

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


# ============================================================================ session tokens


class SdkSessionTokenCreate(RequestModel):
    """`@billingos/node` `createSessionToken` (undefined fields are left out by JSON.stringify)."""

    externalUserId: str = Field(min_length=1, max_length=255)
    # Accepted and not used: a token is for one end user, whatever their organization is.
    externalOrganizationId: str | None = Field(default=None, max_length=255)
    expiresIn: int = Field(default=3600, ge=60, le=86400)
    allowedOperations: list[str] | None = Field(default=None, max_length=50)
    # Informational (IP address, user agent…); not stored.
    metadata: dict[str, Any] | None = None

    @field_validator("allowedOperations")
    @classmethod
    def no_scoping_yet(cls, value: list[str] | None) -> list[str] | None:
        # A token cannot be narrowed yet; minting a full token for a caller that asked for a
        # narrow one would widen what it can do, so it is refused.
        if value:
            raise ValueError("scoped session tokens (allowedOperations) are not supported yet")
        return value


class SdkSessionTokenOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    sessionToken: str
    expiresAt: datetime
    id: str


def _serve_session_token(handler: Callable[..., Any]) -> Response:
    body = parse_body(SdkSessionTokenCreate)
    assert isinstance(body, SdkSessionTokenCreate)
    ours = SessionTokenCreate(
        customer=CustomerIn(external_id=body.externalUserId), expires_in=body.expiresIn
    )
    response = handler(body=ours)
    created = json.loads(response.get_data())
    rendered = {
        "sessionToken": created["token"],
        "expiresAt": created["expires_at"],
        **created,
    }
    return json_response(rendered, response.status_code)


register(
    SDK_2026_01_01,
    "session_tokens.create_session_token",
    RouteTranslator(
        serve=_serve_session_token,
        body=SdkSessionTokenCreate,
        responses={201: SdkSessionTokenOut},
    ),
)


# ============================================================================ pricing table


class SdkProductsQuery(QueryModel):
    planIds: str | None = Field(default=None, max_length=4000, description="Product ids, a,b,c")


class PricingPrice(BaseModel):
    id: str
    amount: int
    currency: str
    interval: Literal["day", "week", "month", "year"] | None
    intervalCount: int


class PricingFeatureProperties(BaseModel):
    limit: int | None = None
    period: Literal["month", "year"] | None = None
    unit: str | None = None


class PricingFeature(BaseModel):
    id: str
    name: str = Field(description="The feature key.")
    title: str
    type: Literal["boolean_flag", "usage_quota", "numeric_limit"]
    properties: PricingFeatureProperties


class PricingProduct(BaseModel):
    id: str
    name: str
    description: str
    prices: list[PricingPrice]
    features: list[PricingFeature]
    isCurrentPlan: bool
    trialDays: int
    highlighted: bool


class PricingCurrentSubscription(BaseModel):
    id: str
    productId: str
    priceId: str
    status: str
    currentPeriodEnd: datetime | None
    cancelAtPeriodEnd: bool
    interval: Literal["day", "week", "month", "year"] | None
    amount: int | None


class PricingTable(BaseModel):
    products: list[PricingProduct]
    currentSubscription: PricingCurrentSubscription | None


class ProductsAnswer(RootModel[PricingTable | ProductList]):
    """`GET /v1/products`: the pricing table for a session token, the catalog for a secret key."""


def _pricing_product(product: Product, current_product_ids: set[uuid.UUID]) -> PricingProduct:
    prices = [p for p in product.prices if p.active]
    return PricingProduct(
        id=str(product.id),
        name=product.name,
        description=product.description or "",
        prices=[
            PricingPrice(
                id=str(p.id),
                amount=p.amount,
                currency=p.currency,
                interval=p.interval,
                intervalCount=1,
            )
            for p in prices
        ],
        features=[
            PricingFeature(
                id=str(f.id),
                name=f.key,
                title=f.name,
                type=f.type,
                properties=PricingFeatureProperties(
                    limit=product.limit_of(f.id), period=f.period, unit=f.unit
                ),
            )
            for f in product.features
        ],
        isCurrentPlan=product.id in current_product_ids,
        trialDays=max((p.trial_period_days or 0 for p in prices), default=0),
        highlighted=False,
    )


def _current_subscription(
    subscription: Subscription | None, products: dict[uuid.UUID, Product]
) -> PricingCurrentSubscription | None:
    if subscription is None:
        return None
    product = products.get(subscription.product_id)
    price = next(
        (p for p in (product.prices if product else []) if p.id == subscription.price_id), None
    )
    return PricingCurrentSubscription(
        id=str(subscription.id),
        productId=str(subscription.product_id),
        priceId=str(subscription.price_id),
        status=subscription.status,
        currentPeriodEnd=subscription.current_period_end,
        cancelAtPeriodEnd=subscription.cancel_at_period_end,
        interval=price.interval if price else None,
        amount=price.amount if price else None,
    )


def _plan_ids(raw: str | None) -> set[str] | None:
    if raw is None or not raw.strip():
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _serve_pricing_table(_handler: Callable[..., Any]) -> Response:
    query = parse_query(SdkProductsQuery)
    assert isinstance(query, SdkProductsQuery)
    principal = current_customer()
    # The SDK reads one list and never pages: the table holds the first page of the largest size
    # (a pricing table of more than 100 plans is not one a buyer can read).
    every_product, _ = catalog.list_active_products(
        principal.organization_id, ListQuery(limit=MAX_PAGE_SIZE)
    )
    products = every_product
    wanted = _plan_ids(query.planIds)
    if wanted is not None:
        products = [p for p in products if str(p.id) in wanted]
    live = subscriptions.live_subscriptions(db.session(), principal.customer_id)
    current_ids = {s.product_id for s in live}
    by_id = {p.id: p for p in every_product}
    table = PricingTable(
        products=[_pricing_product(p, current_ids) for p in products],
        currentSubscription=_current_subscription(live[0] if live else None, by_id),
    )
    return json_response(table)


register(
    SDK_2026_01_01,
    "catalog.list_products",
    RouteTranslator(
        serve=_serve_pricing_table,
        # A merchant's server listing its catalog gets the 2026-11-27 list in every version.
        credential="session_token",
        query=SdkProductsQuery,
        responses={200: ProductsAnswer},
    ),
)


# ============================================================================ checkout


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
