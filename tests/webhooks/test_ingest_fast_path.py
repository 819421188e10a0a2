"""Well-signed deliveries are answered below Flask; the answer is the route's, header for header."""

from __future__ import annotations

import json

from app.webhooks.ingest import PATH
from tests.support.stripe_webhooks import envelope, signature_header
from tests.webhooks.conftest import inbox, queued_event_ids, stripe_fixture

SECURITY_HEADERS = (
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Content-Security-Policy",
    "X-Frame-Options",
)


def _post(client, webhook_secret, path=PATH, request_id="req-ingest-1"):
    event = envelope("invoice.paid", stripe_fixture("invoice"))
    payload = json.dumps(event)
    response = client.post(
        path,
        data=payload,
        headers={
            "Stripe-Signature": signature_header(payload, webhook_secret),
            "Content-Type": "application/json",
            "X-Request-Id": request_id,
        },
    )
    return event, response


def test_fast_answer_carries_the_routes_body_request_id_and_security_headers(
    client, webhook_secret
):
    event, fast = _post(client, webhook_secret)
    # The same delivery through the Flask route (a query string sends it there).
    _, routed = _post(client, webhook_secret, path=PATH + "?via=route", request_id="req-ingest-2")
    assert fast.status_code == routed.status_code == 200
    assert fast.get_json() == routed.get_json() == {"received": True, "stored": True}
    assert fast.headers["X-Request-Id"] == "req-ingest-1"
    assert routed.headers["X-Request-Id"] == "req-ingest-2"
    for name in SECURITY_HEADERS:
        assert fast.headers[name] == routed.headers[name], name
    assert fast.mimetype == routed.mimetype == "application/json"
    assert inbox(event["id"]) is not None
    assert event["id"] in queued_event_ids()


def test_the_queued_message_carries_the_delivery_request_id(client, webhook_secret, redis_client):
    event, response = _post(client, webhook_secret, request_id="req-ingest-3")
    assert response.status_code == 200
    [message] = [json.loads(m) for m in redis_client.lrange("celery", 0, -1)]
    assert message["headers"]["billingos_request_id"] == "req-ingest-3"
    assert message["headers"]["billingos_stripe_event_id"] == event["id"]


def test_a_bad_signature_still_gets_the_routes_problem(client):
    payload = json.dumps(envelope("invoice.paid", stripe_fixture("invoice")))
    response = client.post(
        PATH,
        data=payload,
        headers={"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "invalid_signature"
