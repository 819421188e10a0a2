"""The Stripe.js stand-in: `GET /js/v3/` and the few browser-facing calls it makes.

Real Stripe.js, loaded by a page with a publishable key, creates PaymentMethods, reads and
confirms intents by their client secret, and runs 3-D Secure in a modal. The stand-in served
here (static/stripe.js) does the same against this emulator, so a browser test of a checkout
page needs no network. Its calls live under `/_stripejs/…` (JSON, CORS open to any origin, as a
publishable key is public) and are authorised like Stripe's: a `pk_test_…` key, and for an
intent its client secret. The card form it renders maps the test numbers to the same
scenarios as the API (4242… succeeds, 4000 0000 0000 0002 declines, 4000 0027 6000 3184 asks
for 3-D Secure, whose challenge offers "Complete" and "Fail").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from .engine import Engine
from .errors import StripeError, invalid
from .params import snapshot

PREFIXES = ("/js/v3", "/_stripejs/")
SCRIPT = Path(__file__).with_name("static") / "stripe.js"
# status, body, extra headers, content type: the emulator's Response arguments
Answer = tuple[int, bytes, tuple[tuple[str, str], ...], str]
_JSON = "application/json"


def _cors(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    origin = headers.get("origin")
    if not origin:
        return ()
    return (
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Headers", "Content-Type"),
        ("Access-Control-Allow-Methods", "GET, POST"),
        ("Vary", "Origin"),
    )


def _answer(status: int, obj: Any, headers: dict[str, str]) -> Answer:
    return status, json.dumps(obj).encode(), _cors(headers), _JSON


def handle(
    engine: Engine, method: str, path: str, query: str, headers: dict[str, str], body: bytes
) -> Answer:
    if path.rstrip("/") == "/js/v3":
        return (
            200,
            SCRIPT.read_bytes(),
            (("Cache-Control", "no-cache"), ("Access-Control-Allow-Origin", "*")),
            "text/javascript; charset=utf-8",
        )
    if method == "OPTIONS":
        return 204, b"", _cors(headers), "text/plain"
    try:
        data = json.loads(body) if method == "POST" and body.strip() else dict(parse_qsl(query))
        if not isinstance(data, dict):
            raise invalid("the body must be a JSON object")
        if not str(data.get("key", "")).startswith("pk_test_"):
            raise StripeError(401, "invalid_request_error", "Send a publishable key pk_test_….")
        with engine.lock:
            if "host" in headers:
                engine.base_url = "http://" + headers["host"]
            result = _route(engine, method, path.removeprefix("/_stripejs/").strip("/"), data)
        return _answer(200, snapshot(result), headers)
    except StripeError as exc:
        return _answer(exc.status, exc.body(), headers)


def _route(engine: Engine, method: str, route: str, data: dict[str, Any]) -> Any:
    if route == "payment_methods" and method == "POST":
        card = data.get("card")
        if not isinstance(card, dict):
            card = {}
        return engine.op_payment_methods_create(
            None,
            {
                "type": "card",
                # The CVC is checked for presence in the browser and never stored, like Stripe.
                "card": {k: v for k, v in card.items() if k in ("number", "exp_month", "exp_year")},
                **(
                    {"billing_details": data["billing_details"]}
                    if isinstance(data.get("billing_details"), dict)
                    else {}
                ),
            },
        )
    parts = route.split("/")
    if parts[0] != "intents" or len(parts) not in (1, 2):
        raise StripeError(404, "invalid_request_error", f"Unknown Stripe.js call {route}")
    kind, intent = _intent(engine, str(data.get("client_secret", "")))
    action = parts[1] if len(parts) == 2 else "retrieve"
    if action == "retrieve" and method == "GET":
        return intent
    if action == "confirm" and method == "POST":
        params = {"payment_method": str(data.get("payment_method", ""))}
        if kind == "payment_intent":
            return engine.op_payment_intents_confirm(intent["id"], params)
        return engine.op_setup_intents_confirm(intent["id"], params)
    if action == "authenticate" and method == "POST":
        outcome = data.get("outcome")
        if kind == "payment_intent":
            return engine.authenticate_payment_intent(intent["id"], outcome)
        return engine.authenticate_setup_intent(intent["id"], outcome)
    raise StripeError(404, "invalid_request_error", f"Unknown Stripe.js call {method} {route}")


def _intent(engine: Engine, client_secret: str) -> tuple[str, dict[str, Any]]:
    """The intent a client secret names, if the secret is exactly its own."""
    intent_id = client_secret.partition("_secret_")[0]
    kind = "setup_intent" if intent_id.startswith("seti_") else "payment_intent"
    intent = engine.objects.get(intent_id)
    if intent is None or intent.get("client_secret") != client_secret:
        raise StripeError(
            404,
            "invalid_request_error",
            "No such intent for this client secret.",
            code="resource_missing",
            param="client_secret",
        )
    return kind, intent
