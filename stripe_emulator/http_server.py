"""HTTP/1.1 front end (asyncio, keep-alive): parsing requests off the wire, writing answers,
faults at the connection level (timeouts, resets) and the serve loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from . import objects
from .errors import StripeError
from .responses import Response, json_response

if TYPE_CHECKING:
    from .server import App

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
MAX_BODY = 4 * 1024 * 1024


class HTTPConnection(asyncio.Protocol):
    """A minimal HTTP/1.1 server connection with keep-alive (requests are handled in order)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.hold = False  # a fault holds the connection: ignore further input
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while not self.hold and self.transport is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self._error(413)
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self._error(400)
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._error(411)
                return
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                self._error(400)
                return
            if length > MAX_BODY:
                self._error(413)
                return
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            conn_hdr = headers.get("connection", "").lower()
            self.keep_alive = (
                (conn_hdr != "close") if version == "HTTP/1.1" else (conn_hdr == "keep-alive")
            )
            try:
                self.app.handle(self, method, target, headers, body)
            except Exception as exc:  # a bug must not kill the server
                import traceback

                traceback.print_exc()
                self.respond(
                    json_response(
                        500, StripeError(500, "api_error", f"Emulator error: {exc!r}").body()
                    )
                )

    def _error(self, status: int) -> None:
        self.keep_alive = False
        self.respond(Response(status, b"", content_type="text/plain"))

    def respond(self, resp: Response) -> None:
        if self.transport is None:
            return
        parts = [
            f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}\r\n"
            f"Content-Type: {resp.content_type}\r\nContent-Length: {len(resp.body)}\r\n"
            f"Stripe-Version: {objects.API_VERSION}\r\n"
        ]
        for name, value in resp.headers:
            parts.append(f"{name}: {value}\r\n")
        parts.append(
            "Connection: keep-alive\r\n\r\n" if self.keep_alive else "Connection: close\r\n\r\n"
        )
        self.transport.write("".join(parts).encode("latin-1") + resp.body)
        if not self.keep_alive:
            self.transport.close()

    def hang_then_close(self, delay: float) -> None:
        """The operation was done; answer nothing, and close after ``delay`` seconds."""
        self.hold = True
        transport = self.transport
        if transport is not None:
            asyncio.get_event_loop().call_later(delay, transport.close)

    def reset(self) -> None:
        """The operation was done; drop the connection with a TCP RST, unanswered."""
        self.hold = True
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


async def serve(host: str, port: int, app: App, ready: Callable[[int], None] | None = None) -> None:
    loop = asyncio.get_running_loop()
    app.loop = loop
    app.dispatcher.loop = loop
    server = await loop.create_server(
        lambda: HTTPConnection(app), host, port, backlog=1024, reuse_address=True
    )
    actual = server.sockets[0].getsockname()[1]
    app.engine.base_url = f"http://{host if ':' not in host else '[' + host + ']'}:{actual}"

    async def ticker() -> None:
        while True:
            await asyncio.sleep(1.0)
            with app.engine.lock:
                app.engine.run_due()

    tick = loop.create_task(ticker())
    if ready is not None:
        ready(actual)
    try:
        async with server:
            await server.serve_forever()
    finally:
        tick.cancel()
