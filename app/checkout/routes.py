"""Checkout endpoints: the SDK's create, confirm and status; merchants' checkout/payment lists."""

from __future__ import annotations

import re
import uuid

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from app import rate_limit
from app.api import SECRET_KEY, SESSION_TOKEN, json_response, operation
from app.auth import current_customer, current_merchant, digest
from app.checkout import service
from app.checkout.schemas import (
    CheckoutConfirm,
    CheckoutCreate,
    CheckoutListQuery,
    CheckoutOut,
    MerchantCheckoutList,
    MerchantCheckoutOut,
    PaymentList,
    PaymentListQuery,
    checkout_out,
    merchant_checkout_out,
    payment_out,
)
from app.db import db
from app.errors import ApiError, ValidationFailed

bp = Blueprint("checkout", __name__)

_WAIT_VALUE = re.compile(r"\d{1,2}")
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class InvalidPreference(ApiError):
    status = 400
    code = "invalid_prefer_header"
    title = "Invalid Prefer header"


def _prefer_wait() -> int:
    """The `wait` preference (RFC 7240) in seconds, 0 without one.

    Parsed strictly and before anything is written: a malformed or too long wait is the
    client's error (400), not something to discover after the checkout is committed. Other
    preferences are none of this endpoint's business and are ignored.
    """
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            value = value.strip().strip('"')
            if not _WAIT_VALUE.fullmatch(value) or int(value) > service.MAX_WAIT_SECONDS:
                raise InvalidPreference(
                    f"Prefer: wait=N takes a whole number of seconds from 0 to "
                    f"{service.MAX_WAIT_SECONDS}."
                )
            return int(value)
    return 0


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationFailed(
            "The Idempotency-Key header must be 1–255 characters.",
            errors=[{"loc": ["header", "Idempotency-Key"], "msg": "1–255 characters"}],
        )
    return key


@bp.post("/v1/checkout/create")
@operation(
    summary="Open a checkout for a price",
    description=(
        "Answers 202 with a `pending` checkout at once, or — with `Prefer: wait=N` (N ≤ 10) — "
        "201 once the checkout is `open` and carries its `client_secret`. A repeat with the same "
        "`Idempotency-Key` (default: this session token and price) answers 200 with the same "
        "checkout; the same key with a different body is a 422 `idempotency_key_reused`. A "
        "malformed `Prefer` wait, or one over 10, is a 400 `invalid_prefer_header`. Rate "
        "limited per session token and per customer (429 with `Retry-After`)."
    ),
    auth=SESSION_TOKEN,
    body=CheckoutCreate,
    responses={201: CheckoutOut, 202: CheckoutOut, 200: CheckoutOut},
    errors={
        400: "invalid_prefer_header",
        404: "price_not_found",
        409: "already_subscribed",
        422: "validation_error",
        429: "rate_limited",
    },
    tags=["checkout"],
)
def create_checkout(body: CheckoutCreate) -> ResponseReturnValue:
    principal = current_customer()
    rate_limit.enforce(rate_limit.CHECKOUT_CREATE_PER_TOKEN, str(principal.session_token_id))
    rate_limit.enforce(rate_limit.CHECKOUT_CREATE_PER_CUSTOMER, str(principal.customer_id))
    idempotency_key = _idempotency_key()
    wait = _prefer_wait()
    result = service.create_checkout(principal, body, idempotency_key)
    db.session.commit()
    checkout = result.checkout
    headers: dict[str, str] = {}
    if wait > 0:
        headers["Preference-Applied"] = f"wait={wait}"
        if checkout.status == "pending":
            checkout = service.wait_while_pending(checkout, wait)
    if not result.created:
        status = 200  # a repeat of the same idempotency key
    elif checkout.status == "pending":
        status = 202
    else:
        status = 201
    out = checkout_out(checkout, service.subscription_of(checkout))
    return json_response(out, status, headers)


@bp.post("/v1/checkout/<string:client_secret>/confirm")
@operation(
    summary="Confirm a checkout with a payment method or confirmation token",
    description=(
        "Marks the checkout `processing` and confirms it with Stripe in the background; follow "
        "it with the status, stream or websocket endpoints. Rate limited per checkout and per "
        "customer, so a declined card can be retried a few times but not tried by the hundred "
        "(429 with `Retry-After`)."
    ),
    auth=SESSION_TOKEN,
    body=CheckoutConfirm,
    responses={202: CheckoutOut},
    errors={
        404: "checkout_not_found",
        409: "checkout_not_confirmable",
        410: "checkout_expired",
        422: "validation_error",
        429: "rate_limited",
    },
    tags=["checkout"],
)
def confirm_checkout(client_secret: str, body: CheckoutConfirm) -> ResponseReturnValue:
    principal = current_customer()
    # Counted by the secret's digest: the secret itself never becomes a Redis key.
    rate_limit.enforce(rate_limit.CONFIRM_PER_CHECKOUT, digest(client_secret))
    rate_limit.enforce(rate_limit.CONFIRM_PER_CUSTOMER, str(principal.customer_id))
    checkout = service.confirm_checkout(principal, client_secret, body)
    db.session.commit()
    return json_response(checkout_out(checkout, service.subscription_of(checkout)), 202)


@bp.get("/v1/checkout/<uuid:checkout_id>/status")
@operation(
    summary="The checkout's current state (poll with If-None-Match)",
    auth=SESSION_TOKEN,
    responses={200: CheckoutOut},
    errors={404: "checkout_not_found"},
    extra_responses={304: {"description": "Not modified since the ETag sent"}},
    tags=["checkout"],
)
def checkout_status(checkout_id: uuid.UUID) -> ResponseReturnValue:
    checkout = service.get_customer_checkout(current_customer(), checkout_id)
    tag = service.etag(checkout)
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if service.etag_matches(request.headers.get("If-None-Match"), tag):
        response = Response(status=304)
        for name, value in headers.items():
            response.headers[name] = value
        return response
    return json_response(checkout_out(checkout, service.subscription_of(checkout)), 200, headers)


@bp.get("/v1/checkouts")
@operation(
    summary="List checkouts",
    auth=SECRET_KEY,
    query=CheckoutListQuery,
    responses={200: MerchantCheckoutList},
    tags=["checkout"],
)
def list_checkouts(query: CheckoutListQuery) -> ResponseReturnValue:
    checkouts, external_ids, has_more = service.list_checkouts(
        current_merchant().organization_id, query
    )
    subscriptions = service.subscriptions_of(checkouts)
    data = [
        merchant_checkout_out(c, subscriptions.get(c.id), external_ids.get(c.customer_id))
        for c in checkouts
    ]
    return json_response(MerchantCheckoutList(data=data, has_more=has_more))


@bp.get("/v1/checkouts/<uuid:checkout_id>")
@operation(
    summary="Retrieve a checkout",
    auth=SECRET_KEY,
    responses={200: MerchantCheckoutOut},
    errors={404: "checkout_not_found"},
    tags=["checkout"],
)
def get_checkout(checkout_id: uuid.UUID) -> ResponseReturnValue:
    checkout, external_id = service.get_merchant_checkout(
        current_merchant().organization_id, checkout_id
    )
    return json_response(
        merchant_checkout_out(checkout, service.subscription_of(checkout), external_id)
    )


@bp.get("/v1/payments")
@operation(
    summary="Payment history: one row per Stripe PaymentIntent",
    auth=SECRET_KEY,
    query=PaymentListQuery,
    responses={200: PaymentList},
    tags=["checkout"],
)
def list_payments(query: PaymentListQuery) -> ResponseReturnValue:
    payments, external_ids, has_more = service.list_payments(
        current_merchant().organization_id, query
    )
    data = [payment_out(p, external_ids.get(p.customer_id)) for p in payments]
    return json_response(PaymentList(data=data, has_more=has_more))
