"""The ``/_emulator/*`` control API: reset, webhook endpoints, faults, the clock, object actions
(3-D Secure outcomes, dispute closes) and the request log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .engine import Engine
from .params import snapshot as _snapshot
from .responses import Response, json_response

if TYPE_CHECKING:
    from .server import App

FAULT_KINDS = ("error_500", "stored_500", "rate_limit", "timeout", "reset")


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


def handle_control(
    app: App, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
) -> Response:
    engine, disp = app.engine, app.dispatcher
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
        return json_response(200, {"ok": True})
    if route == "reset" and method == "POST":
        with engine.lock:
            engine.reset()
        disp.reset(keep_permanent=True)
        app.faults = []
        app.request_log.clear()
        app.idempotency.clear()
        return json_response(200, {"reset": True})
    if route == "webhook_endpoints":
        if method == "POST":
            ep = disp.add_endpoint(
                data["url"],
                data.get("secret"),
                data.get("enabled_events"),
                api_version=data.get("api_version"),
            )
            return json_response(200, ep.public())
        if method == "DELETE":
            disp.remove_endpoints(data.get("id") or q.get("id"))
            return json_response(200, {"endpoints": [e.public() for e in disp.endpoints]})
        return json_response(200, {"endpoints": [e.public() for e in disp.endpoints]})
    if len(segs) == 3 and segs[0] == "webhook_endpoints" and segs[2] == "roll":
        endpoint = next((e for e in disp.endpoints if e.id == segs[1]), None)
        if endpoint is None:
            return json_response(404, {"error": f"no webhook endpoint {segs[1]}"})
        endpoint.roll(data.get("secret"), float(data.get("expires_in", 24 * 3600)))
        return json_response(200, endpoint.public())
    object_action = _OBJECT_ACTIONS.get((segs[0], segs[2])) if len(segs) == 3 else None
    if object_action is not None and method == "POST":
        with engine.lock:
            return json_response(200, _snapshot(object_action(engine, segs[1], data)))
    if route == "faults":
        if method == "DELETE":
            app.faults = []
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
                        "methods": [m.upper() for m in r["methods"]] if r.get("methods") else None,
                        "count": int(r["count"]) if r.get("count") is not None else None,
                        "timeout_seconds": float(r.get("timeout_seconds", 2.0)),
                    }
                )
            app.faults = new
        return json_response(200, {"faults": app.faults})
    if route == "webhook_chaos":
        if method == "DELETE":
            disp.clear_chaos()
            return json_response(200, disp.chaos)
        if method == "POST":
            return json_response(200, disp.set_chaos(data))
        return json_response(200, dict(disp.chaos, enabled=disp.enabled))
    if route == "webhook_settings":
        if method == "POST":
            return json_response(200, disp.configure(data))
        return json_response(200, disp.settings())
    if route in ("webhooks/pause", "webhooks/resume") and method == "POST":
        disp.set_enabled(route.endswith("resume"))
        return json_response(200, disp.settings())
    if route == "requests":
        if method == "DELETE":
            app.request_log.clear()
            return json_response(200, {"data": []})
        rows = list(app.request_log)
        if q.get("path"):
            rows = [r for r in rows if r["path"].startswith(q["path"])]
        if q.get("method"):
            rows = [r for r in rows if r["method"] == q["method"].upper()]
        if q.get("idempotency_key"):
            rows = [r for r in rows if r["idempotency_key"] == q["idempotency_key"]]
        if q.get("since"):
            rows = [r for r in rows if r["time"] >= float(q["since"])]
        return json_response(200, {"data": rows, "count": len(rows)})
    if route == "events":
        recs = list(engine.events.values())
        if q.get("type"):
            recs = [r for r in recs if r.type == q["type"]]
        if q.get("object_id"):
            recs = [r for r in recs if r.object_id == q["object_id"]]
        return json_response(
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
        return json_response(200, {"now": engine.now(), "offset": engine.clock_offset})
    if route == "clock/advance" and method == "POST":
        with engine.lock:
            seconds = float(data.get("seconds", 0))
            if data.get("to") is not None:
                seconds = float(data["to"]) - engine.now()
            return json_response(200, engine.advance_clock(seconds))
    if route.startswith("3ds/"):
        return Response(
            200,
            b"<html><body>Emulated 3-D Secure challenge. Finish it with "
            b"POST /_emulator/{payment_intents|setup_intents}/{id}/authenticate"
            b"</body></html>",
            content_type="text/html; charset=utf-8",
        )
    return json_response(
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
