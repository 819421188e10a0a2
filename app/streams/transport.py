"""The websocket transport under flask-sock: cheap idle connections, bounded writes, clean closes.

flask-sock hands each handler a simple-websocket `Server` (which drives a wsproto connection).
To hold ten thousand mostly idle clients per gevent process this module replaces or trims parts
of those libraries that are not public API: the per-connection reader thread
(`_ReadWhenReadable`, a `thread_class` that mirrors one turn of `Base._thread`), the spent
upgrade handshake wsproto keeps (`forget_handshake`), and the framing and writing of frames
(`send`, `pump`). tests/streams/test_transport.py pins the library versions and the internals
used here, so an upgrade fails there first, loudly, rather than in production.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flask import Blueprint, request
from flask.typing import ResponseReturnValue
from simple_websocket import ConnectionClosed, Server
from werkzeug.routing.exceptions import WebsocketMismatch
from wsproto.events import Ping, TextMessage
from wsproto.utilities import LocalProtocolError

from app.errors import problem_response
from app.streams.hub import Update
from app.streams.service import (
    CLIENT_GONE,
    IDLE,
    PING,
    TERMINAL,
    TOKEN_EXPIRED,
    TOKEN_REVOKED,
    StatusStream,
)

T = TypeVar("T")

# Websocket close codes (RFC 6455 §7.4; 4000–4999 are the application's).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNAUTHORIZED = 4401
# Over the open-stream caps (per session token, per customer): 429 as an application code.
CLOSE_TOO_MANY_STREAMS = 4429

_END_CLOSE_CODES = {
    TERMINAL: (CLOSE_NORMAL, "final status"),
    IDLE: (CLOSE_GOING_AWAY, "idle; reconnect for a fresh snapshot"),
    TOKEN_EXPIRED: (CLOSE_UNAUTHORIZED, "token expired"),
    TOKEN_REVOKED: (CLOSE_UNAUTHORIZED, "token revoked"),
}

# Clients only listen; a client that talks cannot make the server buffer much.
MAX_MESSAGE_BYTES = 4096


WEBSOCKET_UPGRADE_REQUIRED = "websocket_upgrade_required"


def install(bp: Blueprint) -> None:
    """What the websocket routes of `bp` need: server options, no compression, and a
    problem+json answer to a handshake mismatch."""
    bp.record_once(_configure_websockets)
    bp.before_app_request(_no_websocket_compression)
    bp.app_errorhandler(WebsocketMismatch)(_websocket_upgrade_required)


def _configure_websockets(state: Any) -> None:
    # flask-sock's `SOCK_SERVER_OPTIONS`, for simple-websocket's `Server`.
    options: dict[str, Any] = {"max_message_size": MAX_MESSAGE_BYTES}
    if gevent_active():
        options["thread_class"] = _ReadWhenReadable
    state.app.config.setdefault("SOCK_SERVER_OPTIONS", options)


def _no_websocket_compression() -> None:
    # permessage-deflate keeps zlib state per connection (hundreds of KB) to shrink frames of
    # ~1 KB; declining it is what lets one process hold ten thousand idle clients.
    if request.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def _websocket_upgrade_required(_error: WebsocketMismatch) -> ResponseReturnValue:
    # werkzeug's router refuses a plain GET of a websocket route before any view runs.
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


class _ReadWhenReadable:
    """simple-websocket's `thread_class` under gevent: its receive loop without a greenlet.

    simple-websocket runs one "thread" per connection that blocks in `recv`: a greenlet and a
    Thread object (locks, events, a saved stack) for each of thousands of clients that only
    ever send a pong every ping interval. Instead an I/O watcher waits for the socket to be
    readable and only then runs one short-lived greenlet that does what one turn of
    `Base._thread` does (read, feed wsproto, answer pings and closes, set `ws.event`). The
    handler stops it when it returns (`stop_reading`), before the socket is closed.
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


def forget_handshake(ws: Server) -> None:
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


def stop_reading(ws: Server) -> None:
    if isinstance(ws.thread, _ReadWhenReadable):
        ws.thread.stop()


def gevent_active() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # gevent is installed wherever streams are served
        return False
    return bool(monkey.is_module_patched("socket"))


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
PING_FRAME = b"\x89\x00"
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def plain_framing(ws: Server) -> bool:
    """Whether frames go out as built (no extension, e.g. permessage-deflate, negotiated)."""
    proto = getattr(getattr(ws.ws, "connection", None), "_proto", None)
    return proto is not None and not getattr(proto, "extensions", True)


def send(ws: Server, data: bytes, timeout: float) -> None:
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


def client_gone(ws: Server) -> bool:
    ws.input_buffer.clear()  # clients have nothing to say; never let it pile up
    return not ws.connected


def close(ws: Server, code: int, reason: str) -> None:
    with contextlib.suppress(ConnectionClosed, OSError):
        ws.close(reason=code, message=reason)
        _await_close_reply(ws)


def pump(ws: Server, stream: StatusStream, timeout: float) -> None:
    """Write the stream to the websocket, then close it with the code its end calls for.

    A client that cannot take a frame within `timeout` seconds is dropped."""
    # Pre-built frames (`Update.ws_frame`) are valid only without a negotiated extension;
    # compression is declined (the routes strip the offer), so this is the usual case.
    plain = plain_framing(ws)
    try:
        for item in stream:
            if item is PING:
                if not ws.pong_received:
                    stream.end_reason = CLIENT_GONE  # no pong since the last ping: gone
                    break
                ws.pong_received = False
                send(ws, PING_FRAME if plain else ws.ws.send(Ping()), timeout)
            else:
                assert isinstance(item, Update)
                send(ws, item.ws_frame if plain else ws.ws.send(TextMessage(item.frame)), timeout)
            # Not kept while the stream waits for the next item (a client's own snapshot).
            del item
    except (_SlowClient, OSError):
        stream.end_reason = CLIENT_GONE
    if stream.end_reason in _END_CLOSE_CODES:
        close(ws, *_END_CLOSE_CODES[stream.end_reason])
    elif stream.end_reason == CLIENT_GONE:
        ws.connected = False
        with contextlib.suppress(OSError):
            ws.sock.close()


def in_short_greenlet(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a greenlet that ends with it (under gevent), in this request's context.

    Opening a stream authenticates and reads the snapshot through the scoped database session,
    whose registry is a (gevent) thread-local: every greenlet that touched it keeps a
    per-greenlet entry for as long as it lives, i.e. for the hour a stream is held open.
    """
    if not gevent_active():
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
