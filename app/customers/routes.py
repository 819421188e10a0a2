"""The SDK's `/v1/customer/...` endpoints, the billing portal, and the merchant's customer view."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

from app import rate_limit
from app.api import SECRET_KEY, SESSION_TOKEN, json_response, operation
from app.auth import CustomerPrincipal, current_customer, current_merchant
from app.customers import service
from app.customers.schemas import (
    CustomerDetailOut,
    PortalSessionCreate,
    PortalSessionOut,
    PortalSessionQuery,
)
from app.db import db
from app.entitlements.cache import CACHE_TTL_SECONDS
from app.entitlements.schemas import EntitlementList
from app.entitlements.service import entitlements_body
from app.pagination import ListQuery
from app.subscriptions import service as subscriptions
from app.subscriptions.schemas import (
    SubscriptionCancel,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionOut,
    subscription_out,
)

bp = Blueprint("customers", __name__)


# Each of these calls Stripe on every request: a runaway SDK loop must not spend the merchant's
# Stripe rate limit. Counted per customer (all their session tokens together).
def _rate_limit(name: str, principal: CustomerPrincipal) -> None:
    rate_limit.enforce(name, str(principal.customer_id))


_PORTAL_DESCRIPTION = (
    "A Stripe billing portal session for this customer (cards, invoices, plan changes, "
    "cancellation). `expires_at` is when an unused URL stops working (Stripe: five minutes): "
    "create one right before redirecting. 409 `no_billing_account` when the customer has never "
    "reached Stripe (no checkout or subscription yet). Rate limited per customer (GET and POST "
    "together): 429 with `Retry-After`."
)


@bp.get("/v1/customer/entitlements")
@operation(
    summary="What this customer may use now",
    description=(
        "The features granted by the customer's live subscriptions (until their trial or "
        "period ends) and one-time purchases (no end). Served from a cache that is invalidated "
        "as soon as a change commits; should that invalidation fail (Redis unreachable at that "
        f"moment), a revoked feature can still be served for at most {CACHE_TTL_SECONDS} s, "
        "the cache's lifetime. A grant whose period ends is never served past its end."
    ),
    auth=SESSION_TOKEN,
    responses={200: EntitlementList},
    tags=["entitlements"],
)
def get_entitlements() -> ResponseReturnValue:
    # The cached body is the response, byte for byte: no parsing on the hot path.
    body = entitlements_body(current_customer().customer_id)
    return Response(body, status=200, mimetype="application/json")


@bp.get("/v1/customer/subscriptions")
@operation(
    summary="This customer's subscriptions, newest first",
    auth=SESSION_TOKEN,
    query=ListQuery,
    responses={200: SubscriptionList},
    tags=["subscriptions"],
)
def list_subscriptions(query: ListQuery) -> ResponseReturnValue:
    principal = current_customer()
    rows, has_more = subscriptions.list_customer_subscriptions(
        principal.organization_id, principal.customer_id, query
    )
    data = [subscription_out(s) for s in rows]
    return json_response(SubscriptionList(data=data, has_more=has_more))


@bp.post("/v1/customer/subscription/create")
@operation(
    summary="Subscribe to a free price, or start a trial that needs no card",
    description=(
        "Creates the subscription in Stripe directly, without a checkout, where nothing is "
        "owed today: a free recurring price (active at once), or a price with a trial "
        "(trialing; if no card is added by the trial's end, Stripe cancels it). Anything "
        "charged now — a paid price without a trial, a one-time price, a second trial of the "
        "same product — answers 402 `payment_required`: use `POST /v1/checkout/create`.\n\n"
        "**Upgrades.** A customer holds at most one live subscription per product. Subscribing "
        "to another price of a product the customer already has (monthly → yearly) is refused "
        "with 409 `already_subscribed`; change plans in the billing portal "
        "(`POST /v1/portal-session`), where Stripe prorates the difference, or cancel first. "
        "So is a product with a checkout in progress for the customer.\n\n"
        "Rate limited per customer (429 with `Retry-After`)."
    ),
    auth=SESSION_TOKEN,
    body=SubscriptionCreate,
    responses={201: SubscriptionOut},
    errors={
        402: "payment_required",
        404: "price_not_found",
        409: "already_subscribed",
        429: "rate_limited",
        503: "stripe_unavailable",
    },
    tags=["subscriptions"],
)
def create_subscription(body: SubscriptionCreate) -> ResponseReturnValue:
    principal = current_customer()
    _rate_limit(rate_limit.SUBSCRIBE_PER_CUSTOMER, principal)
    # The service commits its own transactions (none is open across a Stripe call).
    subscription = subscriptions.create_direct_subscription(principal, body.price_id)
    return json_response(subscription_out(subscription), 201)


@bp.post("/v1/customer/subscriptions/<uuid:subscription_id>/cancel")
@operation(
    summary="Cancel a subscription, at the end of its period (default) or now",
    description=(
        "`at_period_end: true` keeps the subscription and its entitlements until the current "
        "period ends (`cancel_at_period_end` becomes true), then Stripe ends it. "
        "`at_period_end: false` ends it now and revokes its entitlements. Repeating a "
        "period-end cancellation is harmless."
    ),
    auth=SESSION_TOKEN,
    body=SubscriptionCancel,
    responses={200: SubscriptionOut},
    errors={
        404: "subscription_not_found",
        409: "subscription_not_cancelable",
        503: "stripe_unavailable",
    },
    tags=["subscriptions"],
)
def cancel_subscription(
    subscription_id: uuid.UUID, body: SubscriptionCancel
) -> ResponseReturnValue:
    # The service commits its own transactions (none is open across a Stripe call).
    subscription = subscriptions.cancel_subscription(
        current_customer(), subscription_id, at_period_end=body.at_period_end
    )
    return json_response(subscription_out(subscription))


@bp.post("/v1/portal-session")
@operation(
    summary="Open the Stripe billing portal for this customer",
    description=_PORTAL_DESCRIPTION,
    auth=SESSION_TOKEN,
    body=PortalSessionCreate,
    responses={201: PortalSessionOut},
    errors={409: "no_billing_account", 429: "rate_limited", 503: "stripe_unavailable"},
    tags=["billing portal"],
)
def create_portal_session(body: PortalSessionCreate) -> ResponseReturnValue:
    return _open_portal(body.return_url)


@bp.get("/v1/portal-session")
@operation(
    summary="Open the Stripe billing portal for this customer (return_url in the query)",
    description=_PORTAL_DESCRIPTION,
    auth=SESSION_TOKEN,
    query=PortalSessionQuery,
    responses={201: PortalSessionOut},
    errors={409: "no_billing_account", 429: "rate_limited", 503: "stripe_unavailable"},
    tags=["billing portal"],
)
def get_portal_session(query: PortalSessionQuery) -> ResponseReturnValue:
    return _open_portal(query.return_url)


def _open_portal(return_url: str | None) -> ResponseReturnValue:
    principal = current_customer()
    _rate_limit(rate_limit.PORTAL_PER_CUSTOMER, principal)
    portal = service.create_portal_session(principal, return_url)
    return json_response(portal, 201)


@bp.get("/v1/customers/<external_id>")
@operation(
    summary="A customer by your user id, with subscriptions and entitlements",
    auth=SECRET_KEY,
    responses={200: CustomerDetailOut},
    errors={404: "customer_not_found"},
    tags=["customers"],
)
def get_customer(external_id: str) -> ResponseReturnValue:
    detail = service.customer_detail(db.session(), current_merchant().organization_id, external_id)
    return json_response(detail)


@bp.get("/v1/customers/<external_id>/subscriptions")
@operation(
    summary="A customer's subscriptions, newest first",
    auth=SECRET_KEY,
    query=ListQuery,
    responses={200: SubscriptionList},
    errors={404: "customer_not_found"},
    tags=["customers"],
)
def list_customer_subscriptions(external_id: str, query: ListQuery) -> ResponseReturnValue:
    rows, has_more = service.customer_subscriptions(
        db.session(), current_merchant().organization_id, external_id, query
    )
    data = [subscription_out(s) for s in rows]
    return json_response(SubscriptionList(data=data, has_more=has_more))
