"""Real-time endpoints (API.md): checkout status over websocket and SSE, customer websocket.

Handlers only authenticate, open a stream (app/streams/service.py) and write its items in their
wire format. Browsers cannot set headers on a websocket or an EventSource, so the session token
may come as `?token=`; the access log prints the path without its query string
(gunicorn.conf.py) and nothing here logs a URL.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import redis
from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue
from flask_sock import Sock
from pydantic import Field
from simple_websocket import ConnectionClosed, Server
from werkzeug.routing.exceptions import WebsocketMismatch
from wsproto.events import Ping, TextMessage
from wsproto.utilities import LocalProtocolError

from app.api import SESSION_TOKEN, Operation, QueryModel
from app.auth import CustomerPrincipal, authenticate_customer, digest, revoked_token_hashes
from app.checkout.schemas import CheckoutOut
from app.db import db
from app.errors import PROBLEM_JSON, ApiError, NotFound, Unauthenticated, problem_response
from app.realtime import RealtimeSettings, Update, realtime_of
from app.redis_client import get_redis
from app.streams.service import (
    CLIENT_GONE,
    IDLE,
    PING,
    TERMINAL,
    TOKEN_EXPIRED,
    TOKEN_REVOKED,
    StatusStream,
    StreamOptions,
    checkout_stream,
    customer_stream,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

bp = Blueprint("streams", __name__)
sock = Sock()

# Websocket close codes (RFC 6455 §7.4; 4000–4999 are the application's).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNAUTHORIZED = 4401

_END_CLOSE_CODES = {
    TERMINAL: (CLOSE_NORMAL, "final status"),
    IDLE: (CLOSE_GOING_AWAY, "idle; reconnect for a fresh snapshot"),
    TOKEN_EXPIRED: (CLOSE_UNAUTHORIZED, "token expired"),
    TOKEN_REVOKED: (CLOSE_UNAUTHORIZED, "token revoked"),
}


WEBSOCKET_UPGRADE_REQUIRED = "websocket_upgrade_required"

# A plain GET of a websocket route: werkzeug's router refuses it (`WebsocketMismatch`, a 400)
# before any view runs; it is answered as problem+json with its own code, and documented.
_UPGRADE_REQUIRED = {
    400: {
        "description": f"Not a websocket handshake (`code`: `{WEBSOCKET_UPGRADE_REQUIRED}`)",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


class _ReadWhenReadable:
    """simple-websocket's `thread_class` under gevent: its receive loop without a greenlet.

    simple-websocket runs one "thread" per connection that blocks in `recv`: a greenlet and a
    Thread object (locks, events, a saved stack) for each of thousands of clients that only
    ever send a pong every ping interval. Instead an I/O watcher waits for the socket to be
    readable and only then runs one short-lived greenlet that does what one turn of
    `Base._thread` does (read, feed wsproto, answer pings and closes, set `ws.event`). The
    handler stops it when it returns (`_stop_reading`), before the socket is closed.
    """

    def __init__(self, target: Callable[[], None]) -> None:
        self._ws: Server = target.__self__  # type: ignore[attr-defined]
        self.name = "websocket-reader"  # Base.__init__ renames its thread
        self._watcher: Any = None

    def start(self) -> None:
        from gevent import get_hub

        self._watcher = get_hub().loop.io(self._ws.sock.fileno(), 1)
        self._watcher.start(self._readable)

    @property
    def active(self) -> bool:
        return self._watcher is not None

    def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()

    def _readable(self) -> None:
        # In the hub: must not block. One reader at a time; resumed after the read.
        if self._watcher is not None:
            self._watcher.stop()
            _spawn_raw(self._read)

    def _read(self) -> None:
        ws = self._ws
        raw = getattr(ws.sock, "_sock", ws.sock)
        try:
            data: bytes | None = raw.recv(ws.receive_bytes)
        except BlockingIOError:
            data = None
        except OSError:
            data = b""
        try:
            if data == b"":
                ws.connected = False
            elif data is not None:
                ws.ws.receive_data(data)
                ws.connected = ws._handle_events()
        except (OSError, LocalProtocolError):
            ws.connected = False
        if ws.connected and self._watcher is not None:
            self._watcher.start(self._readable)
            return
        # As `Base._thread` ends: wake the handler, close the socket.
        ws.event.set()
        self.stop()
        with contextlib.suppress(OSError):
            ws.sock.close()


def _spawn_raw(fn: Callable[[], None]) -> None:
    from gevent import spawn_raw

    spawn_raw(fn)


class _SpentHandshake:
    """Stands in for wsproto's upgrade handshake once the connection is open.

    `WSConnection` keeps its `H11Handshake` (an h11 connection, the upgrade request and its
    headers) for life, though after the upgrade it only asks it for events, of which there
    are none; for ten thousand idle clients that is a few KB each.
    """

    def events(self) -> Iterator[Any]:
        return iter(())


_SPENT_HANDSHAKE = _SpentHandshake()


def _forget_handshake(ws: Server) -> None:
    connection = ws.ws
    if getattr(connection, "connection", None) is not None and hasattr(connection, "handshake"):
        connection.handshake = _SPENT_HANDSHAKE


# How long a server-initiated close waits for the client's closing frame (RFC 6455 §7.1.1:
# the peer's Close should be read before the TCP connection goes away).
CLOSE_REPLY_SECONDS = 2.0


def _await_close_reply(ws: Server, seconds: float = CLOSE_REPLY_SECONDS) -> None:
    # Closing a socket with unread bytes (the client's Close, in flight) makes the kernel send
    # a reset instead of a FIN, and the client sees a broken pipe, not a clean close.
    reader = ws.thread
    if not isinstance(reader, _ReadWhenReadable):
        return
    deadline = time.monotonic() + seconds
    while reader.active and (left := deadline - time.monotonic()) > 0:
        ws.event.wait(left)
        ws.event.clear()


def _stop_reading(ws: Server) -> None:
    if isinstance(ws.thread, _ReadWhenReadable):
        ws.thread.stop()


def _gevent_active() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # gevent is installed wherever streams are served
        return False
    return bool(monkey.is_module_patched("socket"))


@bp.record_once
def _configure_websockets(state: Any) -> None:
    # Clients only listen; a client that talks cannot make the server buffer much.
    options: dict[str, Any] = {"max_message_size": 4096}
    if _gevent_active():
        options["thread_class"] = _ReadWhenReadable
    state.app.config.setdefault("SOCK_SERVER_OPTIONS", options)


@bp.app_errorhandler(WebsocketMismatch)
def _websocket_upgrade_required(_error: WebsocketMismatch) -> ResponseReturnValue:
    if request.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
        # The opposite mismatch: a websocket handshake to a plain HTTP route.
        return problem_response(
            400, "bad_request", "Bad request", "This endpoint is not a websocket."
        )
    return problem_response(
        400,
        WEBSOCKET_UPGRADE_REQUIRED,
        "Websocket upgrade required",
        "This endpoint is a websocket: open it with a websocket handshake"
        " (`Connection: Upgrade`, `Upgrade: websocket`).",
    )


@bp.before_app_request
def _no_websocket_compression() -> None:
    # permessage-deflate keeps zlib state per connection (hundreds of KB) to shrink frames of
    # ~1 KB; declining it is what lets one process hold ten thousand idle clients.
    if request.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


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
    return realtime_of(current_app).settings


def _authenticate() -> tuple[CustomerPrincipal, Callable[[], bool]]:
    """The session token from the Authorization header, else from `?token=`.

    Also returns the stream's revocation check: true once the token has been revoked."""
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
    checker = _revocation_checker()
    # partial, not a lambda: no closure cells kept per stream.
    return principal, partial(checker.revoked, token_hash)


class _RevocationBatch:
    __slots__ = ("done", "hashes", "revoked")

    def __init__(self) -> None:
        self.hashes: set[str] = set()
        self.revoked: set[str] = set()
        self.done = threading.Event()


class RevocationChecker:
    """The process's streams' revocation checks, coalesced into one Redis MGET per batch.

    Reads the tombstones `app.auth` writes, many tokens at a time.

    A broadcast wakes every stream of a channel at once, and each asks whether its token was
    revoked: one GET each would be thousands of round trips (and pooled connections) per
    broadcast. The first stream to ask opens a batch, yields once so the streams woken with it
    join, then reads every token in the batch with one MGET. The read is sent after every
    member asked, so each gets an answer at least as fresh as its own GET would have been.
    Redis unreachable → not known to be revoked.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._open: _RevocationBatch | None = None

    def revoked(self, token_hash: str) -> bool:
        with self._lock:
            batch = self._open
            leader = batch is None
            if batch is None:
                batch = self._open = _RevocationBatch()
            batch.hashes.add(token_hash)
        if leader:
            try:
                time.sleep(0)  # under gevent: let the greenlets woken with this one join
                with self._lock:
                    self._open = None
                hashes = list(batch.hashes)
                batch.revoked = revoked_token_hashes(self._client, hashes)
            except redis.RedisError:
                pass
            finally:
                with self._lock:
                    if self._open is batch:  # the leader was interrupted before closing it
                        self._open = None
                batch.done.set()
        else:
            batch.done.wait()
        return token_hash in batch.revoked


_REVOCATIONS = "billingos.streams.revocations"


def _revocation_checker() -> RevocationChecker:
    checker: RevocationChecker | None = current_app.extensions.get(_REVOCATIONS)
    if checker is None:
        checker = current_app.extensions[_REVOCATIONS] = RevocationChecker(get_redis())
    return checker


# --------------------------------------------------------------------------- websocket


class _SlowClient(Exception):
    """The client did not take a frame within the send timeout."""


@contextlib.contextmanager
def _send_deadline(seconds: float) -> Iterator[None]:
    try:
        from gevent import Timeout, monkey
    except ImportError:  # gevent is installed wherever streams are served
        yield
        return
    if not monkey.is_module_patched("socket"):
        yield
        return
    with Timeout(seconds, _SlowClient):
        yield


# A ping as a server sends it: final, opcode 0x9, empty, unmasked (RFC 6455 §5.5.2).
_PING_FRAME = b"\x89\x00"
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def _plain_framing(ws: Server) -> bool:
    """Whether frames go out as built (no extension, e.g. permessage-deflate, negotiated)."""
    proto = getattr(getattr(ws.ws, "connection", None), "_proto", None)
    return proto is not None and not getattr(proto, "extensions", True)


def _send(ws: Server, data: bytes, timeout: float) -> None:
    """Write one whole frame, or drop the client.

    The frame is tried with one non-blocking write first: a client keeping up takes it at once,
    for the cost of one syscall (a deadline per send is a timer per client per broadcast). Only
    a client whose buffer is full waits for the rest, in its own greenlet and under the send
    deadline, so a slow or dead client never delays the others.
    """
    if not ws.connected:
        raise ConnectionResetError("websocket closed")
    sock = ws.sock
    # gevent's cooperative socket wraps a non-blocking OS socket: write to that one directly,
    # since gevent's own `send` would wait for writability without a deadline.
    raw = getattr(sock, "_sock", sock)
    try:
        sent = raw.send(data, _DONTWAIT)
    except BlockingIOError:
        sent = 0
    if sent < len(data):
        # simple-websocket's `send` may write part of a frame; sendall under a deadline either
        # writes the rest or drops the client.
        with _send_deadline(timeout):
            sock.sendall(memoryview(data)[sent:])


def _ws_options(
    ws: Server, principal: CustomerPrincipal, revoked: Callable[[], bool]
) -> StreamOptions:
    settings = _settings()
    return StreamOptions(
        ping_seconds=settings.ws_ping_seconds,
        idle_timeout_seconds=settings.idle_timeout_seconds,
        token_expires_at=principal.expires_at,
        token_revoked=revoked,
        client_gone=partial(_client_gone, ws),
        # simple-websocket sets this event when the client sends a frame or closes.
        wake=ws.event,
    )


def _client_gone(ws: Server) -> bool:
    ws.input_buffer.clear()  # clients have nothing to say; never let it pile up
    return not ws.connected


def _ws_principal(ws: Server) -> tuple[CustomerPrincipal, Callable[[], bool]] | None:
    try:
        return _authenticate()
    except ApiError as exc:
        _close(ws, CLOSE_UNAUTHORIZED, exc.code)
        return None


def _close(ws: Server, code: int, reason: str) -> None:
    with contextlib.suppress(ConnectionClosed, OSError):
        ws.close(reason=code, message=reason)
        _await_close_reply(ws)


def _pump(ws: Server, stream: StatusStream) -> None:
    """Write the stream to the websocket, then close it with the code its end calls for."""
    timeout = _settings().send_timeout_seconds
    # Pre-built frames (`Update.ws_frame`) are valid only without a negotiated extension;
    # compression is declined (`_no_websocket_compression`), so this is the usual case.
    plain = _plain_framing(ws)
    try:
        for item in stream:
            if item is PING:
                if not ws.pong_received:
                    stream.end_reason = CLIENT_GONE  # no pong since the last ping: gone
                    break
                ws.pong_received = False
                _send(ws, _PING_FRAME if plain else ws.ws.send(Ping()), timeout)
            else:
                assert isinstance(item, Update)
                _send(ws, item.ws_frame if plain else ws.ws.send(TextMessage(item.frame)), timeout)
            # Not kept while the stream waits for the next item (a client's own snapshot).
            del item
    except (_SlowClient, OSError):
        stream.end_reason = CLIENT_GONE
    if stream.end_reason in _END_CLOSE_CODES:
        _close(ws, *_END_CLOSE_CODES[stream.end_reason])
    elif stream.end_reason == CLIENT_GONE:
        ws.connected = False
        with contextlib.suppress(OSError):
            ws.sock.close()


@sock.route("/v1/checkout/<checkout_id>/ws", bp=bp)
@_documented(
    Operation(
        summary="Checkout status over a websocket",
        description=(
            'Text frames `{"type": "checkout.updated", "data": Checkout}`: the current'
            " snapshot first, then each change in `version` order; server pings; closed with"
            " 1000 after a terminal status, 4401 for a bad token or another customer's"
            " checkout or once the token is revoked or expires, 1001 after the idle limit."
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
        _stop_reading(ws)


def _checkout_websocket(ws: Server, checkout_id: str) -> None:
    # Opening happens in a helper so that, while the stream runs for an hour, this frame holds
    # only the stream, not the principal and the rest of the authentication.
    stream = _in_short_greenlet(_open_checkout_stream, ws, checkout_id)
    if stream is not None:
        _pump(ws, stream)


def _in_short_greenlet(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a greenlet that ends with it (under gevent), in this request's context.

    Opening a stream authenticates and reads the snapshot through the scoped database session,
    whose registry is a (gevent) thread-local: every greenlet that touched it keeps a
    per-greenlet entry for as long as it lives, i.e. for the hour a stream is held open.
    """
    if not _gevent_active():
        return fn(*args)
    import gevent

    context = contextvars.copy_context()

    def run() -> tuple[bool, Any]:
        # Raised in the caller, as if called there (gevent would also print it to stderr).
        try:
            return True, context.run(fn, *args)
        except BaseException as exc:  # re-raised below, in the caller
            return False, exc

    ok, outcome = gevent.spawn(run).get()
    if not ok:
        raise outcome
    result: T = outcome
    return result


def _open_checkout_stream(ws: Server, checkout_id: str) -> StatusStream | None:
    _forget_handshake(ws)
    authenticated = _ws_principal(ws)
    if authenticated is None:
        return None
    principal, revoked = authenticated
    hub = realtime_of(current_app).hub
    options = _ws_options(ws, principal, revoked)
    stream = checkout_stream(hub, checkout_id, principal.customer_id, options)
    if stream is None:
        # Another customer's checkout looks exactly like a bad credential: nothing is revealed.
        _close(ws, CLOSE_UNAUTHORIZED, "not_found")
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
            " revoked or expires. A request without the websocket handshake answers 400"
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
        stream = _in_short_greenlet(_open_customer_stream, ws)
        if stream is not None:
            _pump(ws, stream)
    finally:
        _stop_reading(ws)


def _open_customer_stream(ws: Server) -> StatusStream | None:
    _forget_handshake(ws)
    authenticated = _ws_principal(ws)
    if authenticated is None:
        return None
    principal, revoked = authenticated
    hub = realtime_of(current_app).hub
    return customer_stream(hub, principal.customer_id, _ws_options(ws, principal, revoked))


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
            " comment every 15 s; the stream ends after a terminal status, and when the token"
            " is revoked or expires." + _TOKEN_NOTE
        ),
        auth=SESSION_TOKEN,
        body=None,
        query=StreamQuery,
        responses={200: CheckoutOut},
        tags=["checkout"],
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
    principal, revoked = _authenticate()
    settings = _settings()
    options = StreamOptions(
        ping_seconds=settings.sse_ping_seconds,
        idle_timeout_seconds=settings.idle_timeout_seconds,
        token_expires_at=principal.expires_at,
        token_revoked=revoked,
    )
    hub = realtime_of(current_app).hub
    stream = checkout_stream(hub, checkout_id, principal.customer_id, options)
    if stream is None:
        raise NotFound("No such checkout.")
    response = Response(
        _sse(stream),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # Also when the body is never iterated (a client gone before the first byte).
    response.call_on_close(stream.close)
    return response
