"""What the hosted checkout page may see and do, reached by a checkout id alone.

The page (`/embed/checkout/{id}`) is opened by the SDK's checkout modal in an iframe on the
merchant's site, with no session token: the checkout's id is the capability. Ids are random
UUID4s (122 random bits), handed only to the buyer's browser that created the checkout, so
they cannot be guessed or enumerated; every embed route is scoped to that one checkout and
rate limited per checkout and per client address. What an id reveals is only what the buyer
needs to pay: the product's name, the amount, the client secret Stripe.js needs, and the
outcome. An unknown, expired or cancelled checkout shows a message and nothing else.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import select

from app import settings_of
from app.catalog import service as catalog
from app.checkout import service as checkout_service
from app.checkout.schemas import checkout_out
from app.db import db
from app.embed.schemas import EmbedCheckoutOut
from app.organizations.service import api_settings
from models import CheckoutSession, Subscription
from models.base import utcnow
from models.checkout import CANCELED, EXPIRED, PENDING, SUCCEEDED

REAL_STRIPE_JS = "https://js.stripe.com/v3/"
# How long the page's first request waits for `checkout.prepare` to open a fresh checkout.
PREPARE_WAIT_SECONDS = 5.0


def parse_checkout_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def find_checkout(checkout_id: uuid.UUID) -> CheckoutSession | None:
    return db.session.execute(
        select(CheckoutSession).where(CheckoutSession.id == checkout_id)
    ).scalar_one_or_none()


def unavailable_reason(checkout: CheckoutSession | None) -> str | None:
    """Why the page shows nothing but a message for this checkout, or None if it can show it."""
    if checkout is None:
        return "not_found"
    if checkout.status in (EXPIRED, CANCELED):
        return checkout.status
    if checkout.status != SUCCEEDED and checkout.is_expired_at(utcnow()):
        return EXPIRED
    return None


def opened(checkout: CheckoutSession) -> CheckoutSession:
    """The checkout once `checkout.prepare` has opened it (bounded wait), else as it is."""
    if checkout.status != PENDING:
        return checkout
    return checkout_service.wait_while_pending(checkout, PREPARE_WAIT_SECONDS)


def allowed_origins(organization_id: uuid.UUID) -> tuple[str, ...]:
    """The browser origins the merchant lets frame the page and receive its messages."""
    settings = api_settings(organization_id)
    return settings.allowed_origins if settings is not None else ()


def origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def stripe_js_url(app: Flask) -> str:
    """Real Stripe.js, unless the app talks to the local Stripe emulator (STRIPE_API_BASE),
    whose stand-in speaks to that emulator: real Stripe.js would not know its objects."""
    base = settings_of(app).stripe_api_base
    return f"{base.rstrip('/')}/js/v3/" if base else REAL_STRIPE_JS


def sdk_subscription(subscription: Subscription | None) -> dict[str, Any] | None:
    """The subscription as the SDK's `CHECKOUT_SUCCESS` carries it (camelCase)."""
    if subscription is None:
        return None
    return {
        "id": str(subscription.id),
        "customerId": str(subscription.customer_id),
        "productId": str(subscription.product_id),
        "priceId": str(subscription.price_id),
        "status": subscription.status,
        "currentPeriodStart": _iso(subscription.current_period_start),
        "currentPeriodEnd": _iso(subscription.current_period_end),
        "cancelAtPeriodEnd": subscription.cancel_at_period_end,
        "metadata": {},
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def page_state(checkout: CheckoutSession) -> EmbedCheckoutOut:
    """The checkout as the page reads it: the Checkout object the status endpoint and the
    streams send (so the page treats a poll and a frame alike), plus what it displays."""
    subscription = checkout_service.subscription_of(checkout)
    product = catalog.get_product(checkout.organization_id, checkout.product_id)
    price = next((p for p in product.prices if p.id == checkout.price_id), None)
    return EmbedCheckoutOut(
        **checkout_out(checkout, subscription).model_dump(),
        product_name=product.name,
        interval=price.interval if price is not None else None,
        trial_days=price.trial_period_days if price is not None else None,
        sdk_subscription=sdk_subscription(subscription),
    )
