"""Real-time endpoints (docs/streams.md): checkout status over websocket and SSE; customer ws.

Handlers only authenticate, open a stream (app/streams/service.py) and write its items in their
wire format; the websocket mechanics live in app/streams/transport.py. Browsers cannot set
headers on a websocket or an EventSource, so the session token may come as `?token=`; the
access log prints the path without its query string (gunicorn.conf.py) and nothing here logs a
URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue
from flask_sock import Sock
from pydantic import Field
from simple_websocket import Server

from app import settings_of
from app.api import SESSION_TOKEN, Operation
from app.auth import CustomerPrincipal, authenticate_customer, digest
from app.checkout.schemas import CheckoutOut
from app.config import RealtimeSettings
from app.db import db
from app.errors import PROBLEM_JSON, ApiError, NotFound, Unauthenticated
from app.request_models import QueryModel
from app.streams import transport
from app.streams.hub import Update, hub_of
from app.streams.leases import TooManyStreams, acquire_lease
from app.streams.revocation import revocation_checker
from app.streams.service import (
    PING,
    StatusStream,
    StreamOptions,
    checkout_stream,
    customer_stream,
    own_checkout_id,
)
from app.streams.transport import (
    CLOSE_TOO_MANY_STREAMS,
    CLOSE_UNAUTHORIZED,
    WEBSOCKET_UPGRADE_REQUIRED,
)

bp = Blueprint("streams", __name__)
sock = Sock()

# A plain GET of a websocket route: werkzeug's router refuses it (`WebsocketMismatch`, a 400)
# before any view runs; it is answered as problem+json with its own code, and documented.
_UPGRADE_REQUIRED = {
    400: {
        "description": f"Not a websocket handshake (`code`: `{WEBSOCKET_UPGRADE_REQUIRED}`)",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


transport.install(bp)


def _documented(op: Operation) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe a route in /openapi.json without `@operation`'s header-only authentication."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__openapi__ = op  # type: ignore[attr-defined]
        return fn

    return decorate


class StreamQuery(QueryModel):
    """Browsers cannot set headers on a websocket or an EventSource: they send the token here."""

    token: str | None = Field(
        default=None, description="The session token, when no Authorization header is sent."
    )


_TOKEN_NOTE = (
    " The session token comes as `Authorization: Bearer bos_st_…` or, from a browser, as"
    " `?token=bos_st_…`."
)


def _settings() -> RealtimeSettings:
    return settings_of(current_app).realtime


@dataclass(frozen=True)
class _Caller:
    principal: CustomerPrincipal
    token_hash: str
    # True once the token has been revoked.
    revoked: Callable[[], bool]


def _authenticate() -> _Caller:
    """The session token from the Authorization header, else from `?token=`."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    token = credential.strip() if scheme.lower() == "bearer" else ""
    token = token or request.args.get("token", "")
    if not token:
        raise Unauthenticated("Send the session token as a Bearer header or `?token=`.")
    try:
        principal = authenticate_customer(token)
    finally:
        db.session.remove()  # no pooled connection is held for the life of the stream
    token_hash = digest(token)
    checker = revocation_checker()
    # partial, not a lambda: no closure cells kept per stream.
    return _Caller(principal, token_hash, partial(checker.revoked, token_hash))


def _options(caller: _Caller, ping_seconds: float, **transport: Any) -> StreamOptions:
    """The stream's options, with its slot under the connection caps (TooManyStreams)."""
    settings = _settings()
    return StreamOptions(
        ping_seconds=ping_seconds,
        idle_timeout_seconds=settings.idle_timeout_seconds,
        token_expires_at=caller.principal.expires_at,
        token_revoked=caller.revoked,
        lease=acquire_lease(settings, caller.token_hash, caller.principal.customer_id),
        **transport,
    )


def _own_checkout(caller: _Caller, checkout_id: str) -> uuid.UUID:
    # Before any lease or subscription: a foreign or made-up id costs one read, nothing more.
    own_id = own_checkout_id(checkout_id, caller.principal.customer_id)
    if own_id is None:
        raise NotFound("No such checkout.")
    return own_id


# --------------------------------------------------------------------------- websocket


def _ws_options(ws: Server, caller: _Caller) -> StreamOptions:
    return _options(
        caller,
        _settings().ws_ping_seconds,
        client_gone=partial(transport.client_gone, ws),
        # simple-websocket sets this event when the client sends a frame or closes.
        wake=ws.event,
    )


def _pump(ws: Server, stream: StatusStream) -> None:
    try:
        transport.pump(ws, stream, _settings().send_timeout_seconds)
    finally:
        stream.close()  # its lease above all, whatever ended the pump


def _refuse(ws: Server, error: ApiError) -> None:
    # Another customer's checkout looks exactly like a bad credential: nothing is revealed.
    code = CLOSE_TOO_MANY_STREAMS if isinstance(error, TooManyStreams) else CLOSE_UNAUTHORIZED
    transport.close(ws, code, error.code)


@sock.route("/v1/checkout/<checkout_id>/ws", bp=bp)
@_documented(
    Operation(
        summary="Checkout status over a websocket",
        description=(
            'Text frames `{"type": "checkout.updated", "data": Checkout}`: the current'
            " snapshot first, then each change in `version` order; server pings; closed with"
            " 1000 after a terminal status, 4401 for a bad token or another customer's"
            " checkout or once the token is revoked or expires, 1001 after the idle limit"
            " (no change for `REALTIME_IDLE_TIMEOUT_SECONDS`, 65 minutes by default), 4429"
            " `too_many_streams` when the token or the customer already has the maximum of"
            " open streams."
            " A request without the websocket handshake answers 400"
            " `websocket_upgrade_required`." + _TOKEN_NOTE
        ),
        auth=SESSION_TOKEN,
        body=None,
        query=StreamQuery,
        responses={101: None},
        tags=["checkout"],
        extra_responses=_UPGRADE_REQUIRED,
    )
)
def checkout_websocket(ws: Server, checkout_id: str) -> None:
    try:
        _checkout_websocket(ws, checkout_id)
    finally:
        transport.stop_reading(ws)


def _checkout_websocket(ws: Server, checkout_id: str) -> None:
    # Opening happens in a helper so that, while the stream runs for an hour, this frame holds
    # only the stream, not the principal and the rest of the authentication.
    stream = transport.in_short_greenlet(_open_checkout_stream, ws, checkout_id)
    if stream is not None:
        _pump(ws, stream)


def _open_checkout_stream(ws: Server, checkout_id: str) -> StatusStream | None:
    transport.forget_handshake(ws)
    try:
        caller = _authenticate()
        own_id = _own_checkout(caller, checkout_id)
        options = _ws_options(ws, caller)
    except ApiError as exc:
        _refuse(ws, exc)
        return None
    stream = checkout_stream(hub_of(current_app), own_id, caller.principal.customer_id, options)
    if stream is None:  # deleted since the ownership check
        _refuse(ws, NotFound())
    return stream


@sock.route("/v1/customer/ws", bp=bp)
@_documented(
    Operation(
        summary="The customer's subscriptions and entitlements over a websocket",
        description=(
            'Text frames `{"type": "subscription.updated" | "entitlements.updated",'
            ' "data": …, "version": n}`: every subscription and the current entitlement list'
            " first, then each change (`version` orders the messages of one subscription, and"
            " the entitlement lists); server pings; 4401 for a bad token and once the token is"
            " revoked or expires, 1001 after the idle limit, 4429 `too_many_streams` over the"
            " open-stream caps. A request without the websocket handshake answers 400"
            " `websocket_upgrade_required`." + _TOKEN_NOTE
        ),
        auth=SESSION_TOKEN,
        body=None,
        query=StreamQuery,
        responses={101: None},
        tags=["customer"],
        extra_responses=_UPGRADE_REQUIRED,
    )
)
def customer_websocket(ws: Server) -> None:
    try:
        stream = transport.in_short_greenlet(_open_customer_stream, ws)
        if stream is not None:
            _pump(ws, stream)
    finally:
        transport.stop_reading(ws)


def _open_customer_stream(ws: Server) -> StatusStream | None:
    transport.forget_handshake(ws)
    try:
        caller = _authenticate()
        options = _ws_options(ws, caller)
    except ApiError as exc:
        _refuse(ws, exc)
        return None
    return customer_stream(hub_of(current_app), caller.principal.customer_id, options)


# --------------------------------------------------------------------------- server-sent events


def _sse(stream: StatusStream) -> Iterator[str]:
    # https://html.spec.whatwg.org/multipage/server-sent-events.html: `id` becomes the
    # browser's Last-Event-ID, a comment line keeps proxies from timing the stream out.
    for item in stream:
        if item is PING:
            yield ": ping\n\n"
        else:
            assert isinstance(item, Update)
            yield f"id: {item.version}\nevent: {item.type}\ndata: {item.data_json}\n\n"


@bp.get("/v1/checkout/<checkout_id>/stream")
@_documented(
    Operation(
        summary="Checkout status as server-sent events",
        description=(
            "`text/event-stream`: the current snapshot first, then each change, as"
            " `id: <version>` / `event: checkout.updated` / `data: <Checkout>`; a `: ping`"
            " comment every 15 s; the stream ends after a terminal status, when the token"
            " is revoked or expires, and after the idle limit. 429 `too_many_streams` (with"
            " `Retry-After`) when the token or the customer already has the maximum of open"
            " streams." + _TOKEN_NOTE
        ),
        auth=SESSION_TOKEN,
        body=None,
        query=StreamQuery,
        responses={200: CheckoutOut},
        tags=["checkout"],
        errors={429: TooManyStreams.code},
        extra_responses={
            200: {
                "description": (
                    "A stream of `checkout.updated` events whose `data` is a Checkout"
                    " (`#/components/schemas/CheckoutOut`)"
                ),
                # No schema: the body is an event stream, not one JSON or string value, and a
                # validator must not judge each event against one.
                "content": {"text/event-stream": {}},
            }
        },
    )
)
def checkout_event_stream(checkout_id: str) -> ResponseReturnValue:
    caller = _authenticate()
    own_id = _own_checkout(caller, checkout_id)
    options = _options(caller, _settings().sse_ping_seconds)
    stream = checkout_stream(hub_of(current_app), own_id, caller.principal.customer_id, options)
    if stream is None:
        raise NotFound("No such checkout.")
    return event_stream_response(stream)


def event_stream_response(stream: StatusStream) -> Response:
    """The stream as a `text/event-stream` response that closes it however it ends."""
    response = Response(
        _sse(stream),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # Also when the body is never iterated (a client gone before the first byte).
    response.call_on_close(stream.close)
    return response
