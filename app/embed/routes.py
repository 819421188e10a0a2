"""The hosted checkout page the SDK's modal frames, and the routes it calls.

`GET /embed/checkout/{id}` is server-rendered HTML plus one ES module (static/checkout.js), no
build step. Everything it calls is scoped to that one checkout and needs no session token (the
id is the capability, see app/embed/service.py): its state, its confirm, and its status over a
websocket or server-sent events. Each response says who may frame it
(`Content-Security-Policy: frame-ancestors` = the organization's allowed origins and our own)
and what it may load: Stripe.js and its API, nothing else.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_sock import Sock
from simple_websocket import Server

from app import rate_limit, settings_of
from app.api import PUBLIC, json_response, operation
from app.auth import digest
from app.checkout import service as checkout_service
from app.checkout.schemas import CheckoutConfirm
from app.db import db
from app.embed import service
from app.embed.schemas import EmbedCheckoutOut, EmbedConfirm
from app.errors import ApiError, NotFound
from app.streams import transport
from app.streams.hub import hub_of
from app.streams.leases import acquire_lease
from app.streams.routes import event_stream_response
from app.streams.service import StatusStream, StreamOptions, checkout_stream
from app.streams.transport import CLOSE_UNAUTHORIZED
from models import CheckoutSession

bp = Blueprint(
    "embed",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/embed/static",
)
sock = Sock()


_MESSAGES = {
    "not_found": "This checkout link is not valid. Please start the purchase again.",
    "expired": "This checkout has expired. Please start the purchase again.",
    "canceled": "This checkout was cancelled. Please start the purchase again.",
}


class CheckoutUnavailable(ApiError):
    status = 410
    code = "checkout_unavailable"
    title = "Checkout unavailable"


def _limit(checkout_id: uuid.UUID | None) -> None:
    rate_limit.enforce(rate_limit.EMBED_PER_ADDRESS, request.remote_addr or "unknown")
    if checkout_id is not None:
        rate_limit.enforce(rate_limit.EMBED_PER_CHECKOUT, str(checkout_id))


def _own_origin() -> str:
    return request.host_url.rstrip("/")


def _content_security_policy(frame_ancestors: list[str]) -> str:
    stripe_js = service.stripe_js_url(current_app)
    own = _own_origin()
    websocket = ("wss://" if own.startswith("https://") else "ws://") + own.split("://", 1)[1]
    if stripe_js == service.REAL_STRIPE_JS:
        # The hosts Stripe's CSP guide lists for Stripe.js and the Payment Element.
        scripts = "https://js.stripe.com https://*.js.stripe.com"
        connect = "https://api.stripe.com"
        frames = "https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com"
    else:
        scripts = connect = frames = service.origin_of(stripe_js) or "'none'"
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {scripts}",
            # Stripe.js styles its own elements inline.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: https://*.stripe.com",
            "font-src 'self'",
            f"connect-src 'self' {websocket} {connect}",
            f"frame-src {frames}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors " + " ".join(frame_ancestors),
        ]
    )


def _page(template: str, status: int, config: dict[str, Any], origins: list[str]) -> Response:
    response = Response(
        render_template(
            template,
            config=config,
            stripe_js=service.stripe_js_url(current_app),
            **config,
        ),
        status=status,
        mimetype="text/html",
    )
    response.headers["Content-Security-Policy"] = _content_security_policy(origins)
    # CSP's frame-ancestors decides; the legacy header cannot name several origins.
    response.headers.pop("X-Frame-Options", None)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/embed/checkout/<raw_id>")
def checkout_page(raw_id: str) -> ResponseReturnValue:
    checkout_id = service.parse_checkout_id(raw_id)
    _limit(checkout_id)
    checkout = service.find_checkout(checkout_id) if checkout_id is not None else None
    own = _own_origin()
    origins = (
        list(dict.fromkeys([*service.allowed_origins(checkout.organization_id), own]))
        if checkout is not None
        else [own]
    )
    # Where the modal's page is, when the browser said (the iframe's request carries the
    # parent's origin as its Referer under the default referrer policy).
    referrer = service.origin_of(request.referrer)
    config: dict[str, Any] = {
        "checkoutId": str(checkout_id) if checkout is not None else None,
        "parentOrigins": origins,
        "referrerOrigin": referrer if referrer in origins else None,
    }
    reason = service.unavailable_reason(checkout)
    if reason is not None:
        # A message and nothing else: no amount, no product, no client secret.
        config["error"] = _MESSAGES[reason]
        # For an unknown id nobody is known to be allowed to hear about it.
        if checkout is None:
            config["parentOrigins"] = []
            config["referrerOrigin"] = None
        return _page(
            "embed/unavailable.html", 404 if reason == "not_found" else 410, config, origins
        )
    config.update(
        stateUrl=f"/embed/checkout/{checkout_id}/state",
        confirmUrl=f"/embed/checkout/{checkout_id}/confirm",
        websocketPath=f"/embed/checkout/{checkout_id}/ws",
        streamUrl=f"/embed/checkout/{checkout_id}/stream",
        publishableKey=settings_of(current_app).stripe_publishable_key,
    )
    return _page("embed/checkout.html", 200, config, origins)


def _available(raw_id: str) -> CheckoutSession:
    checkout_id = service.parse_checkout_id(raw_id)
    _limit(checkout_id)
    checkout = service.find_checkout(checkout_id) if checkout_id is not None else None
    reason = service.unavailable_reason(checkout)
    if checkout is None or reason == "not_found":
        raise NotFound("No such checkout.")
    if reason is not None:
        raise CheckoutUnavailable(_MESSAGES[reason])
    return checkout


@bp.get("/embed/checkout/<raw_id>/state")
@operation(
    summary="The hosted checkout page's view of its checkout (by id, no session token)",
    description=(
        "Waits up to 5 s for a fresh checkout to open. The checkout id is the capability:"
        " a random UUID4 known only to the buyer's browser. Rate limited per checkout and"
        " per client address."
    ),
    auth=PUBLIC,
    responses={200: EmbedCheckoutOut},
    errors={404: "not_found", 410: CheckoutUnavailable.code, 429: "rate_limited"},
    tags=["embed"],
)
def checkout_state(raw_id: str) -> ResponseReturnValue:
    checkout = service.opened(_available(raw_id))
    return json_response(service.page_state(checkout), 200, {"Cache-Control": "no-store"})


@bp.post("/embed/checkout/<raw_id>/confirm")
@operation(
    summary="Confirm the checkout with the PaymentMethod Stripe.js created (by id)",
    description=(
        "The same confirmation as `POST /v1/checkout/{client_secret}/confirm`: marks the"
        " checkout `processing` and confirms it with Stripe in the background."
    ),
    auth=PUBLIC,
    body=EmbedConfirm,
    responses={202: EmbedCheckoutOut},
    errors={
        404: "not_found",
        409: "checkout_not_confirmable",
        410: CheckoutUnavailable.code,
        422: "validation_error",
        429: "rate_limited",
    },
    tags=["embed"],
)
def confirm(raw_id: str, body: EmbedConfirm) -> ResponseReturnValue:
    checkout = _available(raw_id)
    # The SDK confirm's card-testing limits, counted on the same subjects: a buyer cannot get a
    # second allowance by switching between the SDK's route and this page.
    if checkout.client_secret:
        rate_limit.enforce(rate_limit.CONFIRM_PER_CHECKOUT, digest(checkout.client_secret))
    rate_limit.enforce(rate_limit.CONFIRM_PER_CUSTOMER, str(checkout.customer_id))
    confirmed = checkout_service.confirm_checkout_by_id(
        checkout.id, CheckoutConfirm(payment_method_id=body.paymentMethodId)
    )
    db.session.commit()
    return json_response(service.page_state(confirmed), 202, {"Cache-Control": "no-store"})


# --------------------------------------------------------------------------- status streams


def _open_stream(raw_id: str, ping_seconds: float, **transport_options: Any) -> StatusStream:
    checkout = _available(raw_id)
    checkout_id, customer_id = checkout.id, checkout.customer_id
    db.session.remove()  # no pooled connection is held for the life of the stream
    settings = settings_of(current_app).realtime
    options = StreamOptions(
        ping_seconds=ping_seconds,
        idle_timeout_seconds=settings.idle_timeout_seconds,
        # The checkout id stands where a session token would: its streams are capped alike.
        lease=acquire_lease(settings, digest(f"embed:{checkout_id}"), customer_id),
        **transport_options,
    )
    stream = checkout_stream(hub_of(current_app), checkout_id, customer_id, options)
    if stream is None:
        raise NotFound("No such checkout.")
    return stream


@sock.route("/embed/checkout/<raw_id>/ws", bp=bp)
def checkout_websocket(ws: Server, raw_id: str) -> None:
    try:
        stream = transport.in_short_greenlet(_open_websocket_stream, ws, raw_id)
        if stream is not None:
            try:
                settings = settings_of(current_app).realtime
                transport.pump(ws, stream, settings.send_timeout_seconds)
            finally:
                stream.close()
    finally:
        transport.stop_reading(ws)


def _open_websocket_stream(ws: Server, raw_id: str) -> StatusStream | None:
    transport.forget_handshake(ws)
    try:
        return _open_stream(
            raw_id,
            settings_of(current_app).realtime.ws_ping_seconds,
            client_gone=lambda: transport.client_gone(ws),
            wake=ws.event,
        )
    except ApiError as exc:
        transport.close(ws, CLOSE_UNAUTHORIZED, exc.code)
        return None


@bp.get("/embed/checkout/<raw_id>/stream")
def checkout_event_stream(raw_id: str) -> ResponseReturnValue:
    return event_stream_response(
        _open_stream(raw_id, settings_of(current_app).realtime.sse_ping_seconds)
    )
