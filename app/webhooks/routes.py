"""`POST /stripe/webhooks`: verify, store, acknowledge — nothing else on the request path."""

from __future__ import annotations

from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from app import logging_setup as log_context
from app import settings_of
from app.api import PUBLIC, json_response, operation
from app.db import db
from app.errors import PROBLEM_JSON
from app.metrics import WEBHOOKS_RECEIVED
from app.webhooks import service

bp = Blueprint("webhooks", __name__)


class WebhookReceipt(BaseModel):
    received: bool
    # False when this delivery repeated an event already stored (Stripe delivers at least once).
    stored: bool


_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


@bp.post("/stripe/webhooks")
@operation(
    summary="Receive a Stripe event",
    description=(
        "Stripe's webhook endpoint. The raw body is verified against `Stripe-Signature` "
        "(HMAC-SHA256, 300 s tolerance), stored once per Stripe event id and acknowledged; "
        "processing happens in a worker. Duplicates and event types BillingOS does not handle "
        "are acknowledged too."
    ),
    auth=PUBLIC,
    responses={200: WebhookReceipt},
    extra_responses={
        400: {
            "description": "Bad signature (`code`: `invalid_signature`) or a body that is not a "
            "Stripe event (`code`: `invalid_payload`); nothing is stored",
            "content": _PROBLEM,
        },
        503: {
            "description": "The event could not be stored (`code`: `service_unavailable`); "
            "Stripe retries",
            "content": _PROBLEM,
        },
    },
    tags=["stripe"],
)
def receive_stripe_webhook() -> ResponseReturnValue:
    payload = request.get_data(cache=False)
    secrets = settings_of(current_app).webhook_secrets
    event = service.verify_event(payload, request.headers.get("Stripe-Signature"), secrets)
    log_context.bind_to_request(stripe_event_id=event["id"])
    try:
        # One statement, its own transaction: no ORM session, no BEGIN/COMMIT round trips.
        with db.autocommit_engine().connect() as connection:
            stored = service.store_event(connection, event, payload)
    except SQLAlchemyError:
        raise service.EventNotStored("The event could not be stored; retry later.") from None
    WEBHOOKS_RECEIVED.labels("true" if stored else "false").inc()
    # Committed above; only now may a worker be told about the row.
    if stored and service.is_handled(event):
        service.enqueue_processing(event["id"])
    return json_response({"received": True, "stored": stored})
