"""HTTP/1.1 front end (asyncio, keep-alive): auth, routing, params, idempotency, faults,
request log, the ``/_emulator`` control API and the billing portal pages."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import random
import socket
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl

from . import objects, stripejs
from .engine import Engine
from .errors import StripeError, invalid
from .forms import FormError, canonical, decode
from .operations import OPERATIONS, build_router
from .params import snapshot as _snapshot
from .webhooks import Dispatcher

IDEMPOTENCY_TTL = 24 * 3600
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
FAULT_KINDS = ("error_500", "stored_500", "rate_limit", "timeout", "reset")
MAX_BODY = 4 * 1024 * 1024


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self, status: int, body: bytes, headers: tuple = (), content_type: str = "application/json"
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.content_type = content_type


def _json(status: int, obj: Any, headers: tuple = ()) -> Response:
    return Response(status, json.dumps(obj).encode(), headers)


# POST /_emulator/{resource}/{id}/{action} -> what it does to the object (returned afterwards)
_OBJECT_ACTIONS: dict[tuple[str, str], Callable[[Engine, str, dict[str, Any]], dict[str, Any]]] = {
    ("payment_intents", "authenticate"): lambda engine, obj_id, data: (
        engine.authenticate_payment_intent(obj_id, data.get("outcome"))
    ),
    ("setup_intents", "authenticate"): lambda engine, obj_id, data: (
        engine.authenticate_setup_intent(obj_id, data.get("outcome"))
    ),
    ("subscriptions", "payment_method"): lambda engine, obj_id, data: (
        engine.set_subscription_payment_method(obj_id, data["payment_method"])
    ),
    ("disputes", "close"): lambda engine, obj_id, data: engine.close_dispute(
        obj_id, data.get("outcome")
    ),
    ("customers", "payment_method"): lambda engine, obj_id, data: engine.op_customers_update(
        obj_id, {"invoice_settings": {"default_payment_method": data["payment_method"]}}
    ),
}


class App:
    def __init__(
        self,
        engine: Engine,
        dispatcher: Dispatcher,
        request_log_size: int = 100_000,
        idempotency_size: int = 200_000,
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.match = build_router(OPERATIONS)
        self.request_log: deque[dict[str, Any]] = deque(maxlen=request_log_size)
        self.idempotency: OrderedDict[str, tuple] = OrderedDict()
        self.idempotency_size = idempotency_size
        self.faults: list[dict[str, Any]] = []
        self.rng = random.Random()
        self.loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ entry point
    def handle(
        self, conn: HTTPConnection, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> None:
        path, _, query = target.partition("?")
        if path.startswith("/v1/"):
            self.handle_api(conn, method, path, query, headers, body)
            return
        try:
            if path.startswith(stripejs.PREFIXES):
                resp = Response(*stripejs.handle(self.engine, method, path, query, headers, body))
            elif path.startswith("/_emulator/"):
                resp = self.handle_control(method, path, query, body, headers)
            elif path.startswith("/p/session/"):
                resp = self.handle_portal(method, path, body)
            elif path == "/" or path == "/_emulator":
                resp = _json(
                    200,
                    {
                        "emulator": "stripe_emulator",
                        "api_version": objects.API_VERSION,
                        "control": "/_emulator/...",
                    },
                )
            else:
                resp = _json(
                    404,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": f"Unrecognized request URL ({method}: {path}).",
                            "code": None,
                            "decline_code": None,
                            "param": None,
                        }
                    },
                )
        except StripeError as exc:
            resp = _json(exc.status, exc.body())
        except (ValueError, KeyError, TypeError) as exc:
            resp = _json(
                400,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": str(exc),
                        "code": None,
                        "decline_code": None,
                        "param": None,
                    }
                },
            )
        conn.respond(resp)

    # ------------------------------------------------------------------ Stripe API
    def handle_api(
        self,
        conn: HTTPConnection,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        engine = self.engine
        request_id = objects.new_id("req", 14)
        idem_key = headers.get("idempotency-key") if method == "POST" else None
        raw = body.decode("utf-8", "replace") if method == "POST" else query
        if method == "POST" and query:
            raw = query + "&" + raw if raw else query
        entry = {
            "id": request_id,
            "time": time.time(),
            "method": method,
            "path": path,
            "params": None,
            "idempotency_key": idem_key,
            "status": None,
            "replayed": False,
            "fault": None,
        }
        self.request_log.append(entry)
        hdrs = (("Request-Id", request_id),)

        def finish(resp: Response, action: str | None = None, delay: float = 0.0) -> None:
            entry["status"] = resp.status
            if action == "timeout":
                conn.hang_then_close(delay)
            elif action == "reset":
                conn.reset()
            else:
                conn.respond(resp)

        # authentication
        auth = headers.get("authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if auth[:6].lower() == "basic ":
            import base64

            try:
                key = base64.b64decode(auth[6:]).decode().split(":")[0]
            except ValueError:
                key = ""
        if not (key.startswith("sk_test_") or key.startswith("rk_test_")):
            msg = (
                "You did not provide an API key."
                if not key
                else f"Invalid API Key provided: {key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}"
            )
            finish(_json(401, StripeError(401, "invalid_request_error", msg).body(), hdrs))
            return
        if key.startswith("rk_test_") and method != "GET":
            finish(
                _json(
                    403,
                    StripeError(
                        403,
                        "invalid_request_error",
                        "The provided key does not have the required "
                        "permissions for this endpoint (restricted keys are read-only in the "
                        "emulator).",
                        code="secret_key_required",
                    ).body(),
                    hdrs,
                )
            )
            return
        try:
            params = decode(raw)
        except (FormError, ValueError) as exc:
            finish(_json(400, invalid(str(exc), getattr(exc, "param", None)).body(), hdrs))
            return
        entry["params"] = params

        # faults
        fault = self._pick_fault(method, path)
        if fault is not None:
            entry["fault"] = fault["kind"]
            if fault["kind"] == "stored_500" and idem_key:
                # Stripe saves the answer of a request that started executing, a 500 included,
                # and replays it to every retry under the same key for 24 hours.
                stored_error = _json(
                    500,
                    StripeError(
                        500, "api_error", "An unknown error occurred (emulated stored fault)."
                    ).body(),
                    hdrs,
                )
                self.idempotency[idem_key] = (
                    (method, path, canonical(raw)),
                    stored_error.status,
                    stored_error.body,
                    engine.now(),
                    request_id,
                )
                finish(stored_error)
                return
            if fault["kind"] in ("error_500", "stored_500"):
                finish(
                    _json(
                        500,
                        StripeError(
                            500, "api_error", "An unknown error occurred (emulated fault)."
                        ).body(),
                        (*hdrs, ("Stripe-Should-Retry", "true")),
                    )
                )
                return
            if fault["kind"] == "rate_limit":
                finish(
                    _json(
                        429,
                        StripeError(
                            429,
                            "invalid_request_error",
                            "Too many requests hit the API too quickly (emulated fault).",
                            code="rate_limit",
                        ).body(),
                        (*hdrs, ("Stripe-Should-Retry", "true")),
                    )
                )
                return

        # idempotent replay
        fingerprint = None
        if idem_key:
            fingerprint = (method, path, canonical(raw))
            stored = self.idempotency.get(idem_key)
            if stored is not None and stored[3] + IDEMPOTENCY_TTL < engine.now():
                del self.idempotency[idem_key]
                stored = None
            if stored is not None:
                if stored[0] != fingerprint:
                    resp = _json(
                        400,
                        StripeError(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{idem_key}' if you meant to execute a different request.",
                        ).body(),
                        hdrs,
                    )
                else:
                    entry["replayed"] = True
                    resp = Response(
                        stored[1],
                        stored[2],
                        (*hdrs, ("Idempotent-Replayed", "true"), ("Original-Request", stored[4])),
                    )
                self._finish_fault(finish, resp, fault)
                return

        # routing, validation, execution
        store = True
        try:
            found = self.match(method, path)
            if found is None:
                raise StripeError(
                    404,
                    "invalid_request_error",
                    f"Unrecognized request URL ({method}: {path}). Please see "
                    "https://stripe.com/docs or we can help at "
                    "https://support.stripe.com/.",
                    store_idempotent=False,
                )
            op, obj_id = found
            for name in params:
                if name not in op.params:
                    raise invalid(
                        f"Received unknown parameter: {name}",
                        name,
                        "parameter_unknown",
                        store=False,
                    )
            for name in op.required:
                if params.get(name) in (None, ""):
                    raise invalid(
                        f"Missing required param: {name}.", name, "parameter_missing", store=False
                    )
            with engine.lock:
                if "host" in headers:
                    engine.base_url = "http://" + headers["host"]
                engine.request_id = request_id
                engine.idempotency_key = idem_key
                try:
                    result = getattr(engine, op.handler_name)(obj_id, params)
                    result = engine.expand(result, params.get("expand"))
                finally:
                    engine.request_id = engine.idempotency_key = None
            resp = Response(200, json.dumps(result).encode(), hdrs)
        except StripeError as exc:
            store = exc.store_idempotent
            resp = _json(exc.status, exc.body(), hdrs)
        if idem_key and store:
            self.idempotency[idem_key] = (
                fingerprint,
                resp.status,
                resp.body,
                engine.now(),
                request_id,
            )
            if len(self.idempotency) > self.idempotency_size:
                self.idempotency.popitem(last=False)
        self._finish_fault(finish, resp, fault)

    @staticmethod
    def _finish_fault(
        finish: Callable[..., None], resp: Response, fault: dict[str, Any] | None
    ) -> None:
        if fault is not None and fault["kind"] in ("timeout", "reset"):
            finish(resp, fault["kind"], float(fault.get("timeout_seconds", 2.0)))
        else:
            finish(resp)

    def _pick_fault(self, method: str, path: str) -> dict[str, Any] | None:
        for rule in self.faults:
            paths = rule.get("paths")
            if paths and not any(path.startswith(p) for p in paths):
                continue
            methods = rule.get("methods")
            if methods and method not in methods:
                continue
            if rule.get("count") is not None and rule["count"] <= 0:
                continue
            if self.rng.random() >= rule["rate"]:
                continue
            if rule.get("count") is not None:
                rule["count"] -= 1
            return rule
        return None

    # ------------------------------------------------------------------ control API
    def handle_control(
        self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> Response:
        engine, disp = self.engine, self.dispatcher
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            data = dict(parse_qsl(body.decode()))
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        q = dict(parse_qsl(query))
        segs = path.strip("/").split("/")[1:]
        route = "/".join(segs)
        if route == "health":
            return _json(200, {"ok": True})
        if route == "reset" and method == "POST":
            with engine.lock:
                engine.reset()
            disp.reset(keep_permanent=True)
            self.faults = []
            self.request_log.clear()
            self.idempotency.clear()
            return _json(200, {"reset": True})
        if route == "webhook_endpoints":
            if method == "POST":
                ep = disp.add_endpoint(
                    data["url"],
                    data.get("secret"),
                    data.get("enabled_events"),
                    api_version=data.get("api_version"),
                )
                return _json(200, ep.public())
            if method == "DELETE":
                disp.remove_endpoints(data.get("id") or q.get("id"))
                return _json(200, {"endpoints": [e.public() for e in disp.endpoints]})
            return _json(200, {"endpoints": [e.public() for e in disp.endpoints]})
        if len(segs) == 3 and segs[0] == "webhook_endpoints" and segs[2] == "roll":
            endpoint = next((e for e in disp.endpoints if e.id == segs[1]), None)
            if endpoint is None:
                return _json(404, {"error": f"no webhook endpoint {segs[1]}"})
            endpoint.roll(data.get("secret"), float(data.get("expires_in", 24 * 3600)))
            return _json(200, endpoint.public())
        object_action = _OBJECT_ACTIONS.get((segs[0], segs[2])) if len(segs) == 3 else None
        if object_action is not None and method == "POST":
            with engine.lock:
                return _json(200, _snapshot(object_action(engine, segs[1], data)))
        if route == "faults":
            if method == "DELETE":
                self.faults = []
            elif method == "POST":
                rules = data.get("rules", [data])
                new = []
                for r in rules:
                    if r.get("kind") not in FAULT_KINDS:
                        raise ValueError(f"kind must be one of {FAULT_KINDS}")
                    rate = float(r.get("rate", 1.0))
                    if not 0 <= rate <= 1:
                        raise ValueError("rate must be within [0, 1]")
                    new.append(
                        {
                            "kind": r["kind"],
                            "rate": rate,
                            "paths": r.get("paths"),
                            "methods": [m.upper() for m in r["methods"]]
                            if r.get("methods")
                            else None,
                            "count": int(r["count"]) if r.get("count") is not None else None,
                            "timeout_seconds": float(r.get("timeout_seconds", 2.0)),
                        }
                    )
                self.faults = new
            return _json(200, {"faults": self.faults})
        if route == "webhook_chaos":
            if method == "DELETE":
                disp.clear_chaos()
                return _json(200, disp.chaos)
            if method == "POST":
                return _json(200, disp.set_chaos(data))
            return _json(200, dict(disp.chaos, enabled=disp.enabled))
        if route == "webhook_settings":
            if method == "POST":
                return _json(200, disp.configure(data))
            return _json(200, disp.settings())
        if route in ("webhooks/pause", "webhooks/resume") and method == "POST":
            disp.set_enabled(route.endswith("resume"))
            return _json(200, disp.settings())
        if route == "requests":
            if method == "DELETE":
                self.request_log.clear()
                return _json(200, {"data": []})
            rows = list(self.request_log)
            if q.get("path"):
                rows = [r for r in rows if r["path"].startswith(q["path"])]
            if q.get("method"):
                rows = [r for r in rows if r["method"] == q["method"].upper()]
            if q.get("idempotency_key"):
                rows = [r for r in rows if r["idempotency_key"] == q["idempotency_key"]]
            if q.get("since"):
                rows = [r for r in rows if r["time"] >= float(q["since"])]
            return _json(200, {"data": rows, "count": len(rows)})
        if route == "events":
            recs = list(engine.events.values())
            if q.get("type"):
                recs = [r for r in recs if r.type == q["type"]]
            if q.get("object_id"):
                recs = [r for r in recs if r.object_id == q["object_id"]]
            return _json(
                200,
                {
                    "data": [
                        {
                            "id": r.id,
                            "type": r.type,
                            "created": r.created,
                            "object_id": r.object_id,
                            "request_id": r.request_id,
                            "delivered": r.delivered(),
                            "deliveries": [d.public() for d in r.deliveries],
                        }
                        for r in recs
                    ],
                    "count": len(recs),
                },
            )
        if route == "clock":
            return _json(200, {"now": engine.now(), "offset": engine.clock_offset})
        if route == "clock/advance" and method == "POST":
            with engine.lock:
                seconds = float(data.get("seconds", 0))
                if data.get("to") is not None:
                    seconds = float(data["to"]) - engine.now()
                return _json(200, engine.advance_clock(seconds))
        if route.startswith("3ds/"):
            return Response(
                200,
                b"<html><body>Emulated 3-D Secure challenge. Finish it with "
                b"POST /_emulator/{payment_intents|setup_intents}/{id}/authenticate"
                b"</body></html>",
                content_type="text/html; charset=utf-8",
            )
        return _json(
            404,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": None,
                    "decline_code": None,
                    "param": None,
                    "message": f"Unknown control endpoint {method} {path}",
                }
            },
        )

    # ------------------------------------------------------------------ billing portal
    def handle_portal(self, method: str, path: str, body: bytes) -> Response:
        segs = path.strip("/").split("/")  # p / session / token [/ cancel / sub_id]
        engine = self.engine
        with engine.lock:
            bps = engine.portal_session_for(segs[2]) if len(segs) >= 3 else None
            if bps is None:
                return Response(
                    404,
                    b"<html><body>Unknown or expired portal session.</body></html>",
                    content_type="text/html; charset=utf-8",
                )
            if method == "POST" and len(segs) == 5 and segs[3] == "cancel":
                sub = engine.objects.get(segs[4])
                if sub is None or sub["customer"] != bps["customer"]:
                    return Response(404, b"no such subscription", content_type="text/plain")
                engine.op_subscriptions_update(sub["id"], {"cancel_at_period_end": "true"})
                return Response(
                    302, b"", (("Location", f"/p/session/{segs[2]}"),), content_type="text/plain"
                )
            cus = engine.objects[bps["customer"]]
            rows = []
            for sub in engine.customer_subscriptions(cus["id"]):
                item = sub["items"]["data"][0]
                action = ""
                if (
                    sub["status"] in ("active", "trialing", "past_due")
                    and not sub["cancel_at_period_end"]
                ):
                    action = (
                        f'<form method="post" action="/p/session/{segs[2]}/cancel/'
                        f'{sub["id"]}"><button>Cancel plan</button></form>'
                    )
                rows.append(
                    f"<tr><td>{html.escape(sub['id'])}</td><td>{html.escape(sub['status'])}</td>"
                    f"<td>{item['price']['unit_amount']} {item['price']['currency']}</td>"
                    f"<td>{'cancels at period end' if sub['cancel_at_period_end'] else ''}</td>"
                    f"<td>{action}</td></tr>"
                )
            ret = html.escape(bps["return_url"] or "#")
            page = (
                "<!doctype html><html><head><title>Billing portal (emulated)</title></head>"
                f"<body><h1>Billing portal</h1><p>Customer {html.escape(cus['id'])} "
                f"{html.escape(cus['email'] or '')}</p><table id='subscriptions'>"
                "<tr><th>subscription</th><th>status</th><th>price</th><th></th><th></th></tr>"
                f"{''.join(rows)}</table><p><a id='return' href='{ret}'>Return</a></p>"
                "</body></html>"
            )
        return Response(200, page.encode(), content_type="text/html; charset=utf-8")


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
                    _json(500, StripeError(500, "api_error", f"Emulator error: {exc!r}").body())
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
