"""The emulator's application: routing a request to the Stripe API (auth, params, idempotency,
faults, request log), the control API, the billing portal or Stripe.js."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import objects, stripejs
from .control import handle_control
from .engine import Engine
from .errors import StripeError, invalid
from .forms import FormError, canonical, decode
from .operations import OPERATIONS, build_router
from .portal import handle_portal
from .responses import Response, json_response
from .webhooks import Dispatcher

if TYPE_CHECKING:
    from .http_server import HTTPConnection

IDEMPOTENCY_TTL = 24 * 3600


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
                resp = handle_control(self, method, path, query, body, headers)
            elif path.startswith("/p/session/"):
                resp = handle_portal(self.engine, method, path, body)
            elif path == "/" or path == "/_emulator":
                resp = json_response(
                    200,
                    {
                        "emulator": "stripe_emulator",
                        "api_version": objects.API_VERSION,
                        "control": "/_emulator/...",
                    },
                )
            else:
                resp = json_response(
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
            resp = json_response(exc.status, exc.body())
        except (ValueError, KeyError, TypeError) as exc:
            resp = json_response(
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
            finish(json_response(401, StripeError(401, "invalid_request_error", msg).body(), hdrs))
            return
        if key.startswith("rk_test_") and method != "GET":
            finish(
                json_response(
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
            finish(json_response(400, invalid(str(exc), getattr(exc, "param", None)).body(), hdrs))
            return
        entry["params"] = params

        # faults
        fault = self._pick_fault(method, path)
        if fault is not None:
            entry["fault"] = fault["kind"]
            if fault["kind"] == "stored_500" and idem_key:
                # Stripe saves the answer of a request that started executing, a 500 included,
                # and replays it to every retry under the same key for 24 hours.
                stored_error = json_response(
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
                    json_response(
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
                    json_response(
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
                    resp = json_response(
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
            resp = json_response(exc.status, exc.body(), hdrs)
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
