"""`POST /stripe/webhooks` on the WSGI level: the ingest hot path without Flask's request cycle.

A delivery's unavoidable work is small — an HMAC of the body, `json.loads`, one INSERT, one
LPUSH — so Flask's share of it (request and app contexts, routing, before/after hooks, the
response object) was a third of the web process's CPU per event. This middleware answers the
common case, a well-signed event, itself: with the same service functions, the same JSON body,
the same request id (bound to the log lines, echoed in `X-Request-Id`), the same security
headers and the same metrics as the route. Everything else — a bad signature, a body that is
not an event, Postgres refusing the insert, a missing or oversized `Content-Length`, a query
string — goes to the Flask route (`app/webhooks/routes.py`) with the body re-wound, and is
answered there exactly as before.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from app import jobs, logging_setup, metrics, security_headers, settings_of
from app.db import db
from app.errors import ApiError
from app.webhooks import service

PATH = "/stripe/webhooks"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WebhookIngest:
    """WSGI middleware: answers well-signed deliveries to `PATH`, passes everything else on."""

    def __init__(self, app: Flask, next_app: WsgiApp, max_body_bytes: int) -> None:
        self.app = app
        self.next_app = next_app
        self.max_body_bytes = max_body_bytes
        self.secrets = settings_of(app).webhook_secrets
        self._metrics: tuple[Any, Any, Any, Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("QUERY_STRING")
        ):
            return self.next_app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if not 0 < length <= self.max_body_bytes:
            return self.next_app(environ, start_response)
        started = time.perf_counter()
        payload = environ["wsgi.input"].read(length)
        try:
            signature = environ.get("HTTP_STRIPE_SIGNATURE")
            event = service.verify_event(payload, signature, self.secrets)
        except ApiError:
            return self._to_route(environ, payload, start_response)
        request_id = logging_setup.sane_request_id(environ.get("HTTP_X_REQUEST_ID"))
        tokens = logging_setup.bind(request_id=request_id, stripe_event_id=event["id"])
        try:
            try:
                with db.autocommit_engine().connect() as connection:
                    stored = service.store_event(connection, event, payload)
            except SQLAlchemyError:
                # The route tries once more and answers the 503 (problem+json) if it fails too.
                return self._to_route(environ, payload, start_response)
            if stored and service.is_handled(event):
                service.enqueue_processing(event["id"], client=jobs.broker_of(self.app))
            body = json.dumps({"received": True, "stored": stored}, separators=(",", ":"))
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                (logging_setup.REQUEST_ID_HEADER, request_id),
                *security_headers.default_headers(environ.get("wsgi.url_scheme") == "https"),
            ]
            start_response("200 OK", headers)
            self._observe(stored, time.perf_counter() - started)
            return [body.encode()]
        finally:
            logging_setup.unbind(tokens)

    def _to_route(
        self, environ: dict[str, Any], payload: bytes, start_response: StartResponse
    ) -> Iterable[bytes]:
        environ["wsgi.input"] = io.BytesIO(payload)
        return self.next_app(environ, start_response)

    def _observe(self, stored: bool, seconds: float) -> None:
        # The label children, looked up once per process (after the fork).
        if self._metrics is None:
            self._metrics = (
                metrics.REQUESTS.labels("POST", PATH, "200"),
                metrics.LATENCY.labels("POST", PATH),
                metrics.WEBHOOKS_RECEIVED.labels("true"),
                metrics.WEBHOOKS_RECEIVED.labels("false"),
            )
        requests, latency, new, repeated = self._metrics
        requests.inc()
        latency.observe(seconds)
        (new if stored else repeated).inc()


def install_ingest(app: Flask, max_body_bytes: int) -> None:
    app.wsgi_app = WebhookIngest(app, app.wsgi_app, max_body_bytes)  # type: ignore[method-assign]
