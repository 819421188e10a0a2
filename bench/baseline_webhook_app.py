"""The baseline for webhook ingest: verify + one insert + one enqueue, and nothing else.

Served exactly as the real API is (gunicorn, gunicorn.conf.py, gevent workers, psycopg2 made
cooperative), against the same database table and the same Redis broker, so the ratio
"BillingOS ingest / this" isolates what BillingOS adds on top of the unavoidable work: the
signature check on the raw body (https://docs.stripe.com/webhooks#verify-events), one row in
the `stripe_events` inbox, one Celery message. The message goes to a queue no worker consumes
(`bench_baseline`), which the harness deletes afterwards.

It also serves the usage-tracking baseline, `POST /baseline/track-usage`: the session-token
cache lookup (the key app/auth.py fills) and one idempotent insert into the usage ledger.

    gunicorn --config gunicorn.conf.py bench.baseline_webhook_app:app
"""

from __future__ import annotations

import hashlib
import json
import sys

if "gevent" in sys.modules:
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

import redis
import stripe
from celery import Celery
from flask import Flask, Response, request
from sqlalchemy import create_engine, text

from app.config import Settings

BASELINE_QUEUE = "bench_baseline"

settings = Settings.from_env()
engine = create_engine(settings.database_url, pool_size=5, max_overflow=5, pool_pre_ping=True)
celery = Celery("bench_baseline", broker=settings.broker_url)
celery.config_from_object("celeryconfig")
celery.conf.broker_url = settings.broker_url

INSERT = text(
    "INSERT INTO stripe_events (id, stripe_event_id, type, payload, status, attempts, livemode,"
    " received_at, created_at, updated_at)"
    " VALUES (gen_random_uuid(), :event_id, :type, CAST(:payload AS jsonb), 'pending', 0, false,"
    " now(), now(), now())"
    " ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id"
)

app = Flask("bench_baseline")
redis_client = redis.Redis.from_url(settings.redis_url)

# The usage baseline: the session-token cache lookup the real auth does first, then one
# idempotent ledger insert, and nothing else (no grant lookup, no aggregate, no publish).
USAGE_INSERT = text(
    "INSERT INTO usage_events (organization_id, customer_id, feature_id, idempotency_key,"
    " quantity, occurred_at, period_start, period_end)"
    " VALUES (:organization_id, :customer_id, :feature_id, :idempotency_key, :quantity, now(),"
    " date_trunc('month', now()), date_trunc('month', now()) + interval '1 month')"
    " ON CONFLICT ON CONSTRAINT uq_usage_events_customer_id_idempotency_key DO NOTHING"
)
FEATURE_ID = text("SELECT id FROM features WHERE organization_id = :organization_id AND key = :key")
_feature_ids: dict[tuple[str, str], str] = {}


@app.get("/healthz")
def healthz() -> Response:
    return Response('{"status":"ok"}', mimetype="application/json")


@app.post("/stripe/webhooks")
def webhook() -> Response:
    payload = request.get_data()
    try:
        event = stripe.Webhook.construct_event(
            payload, request.headers.get("Stripe-Signature", ""), settings.stripe_webhook_secret
        )
    except (ValueError, stripe.SignatureVerificationError):
        return Response('{"code":"invalid_signature"}', 400, mimetype="application/json")
    with engine.begin() as conn:
        row = conn.execute(
            INSERT,
            {"event_id": event["id"], "type": event["type"], "payload": payload.decode()},
        ).first()
    if row is not None:
        celery.send_task("bench.baseline_event", args=[str(row[0])], queue=BASELINE_QUEUE)
    return Response(json.dumps({"received": True}), mimetype="application/json")


@app.post("/baseline/track-usage")
def track_usage() -> Response:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    # The key app/auth.py caches a session token's principal under (filled by the real API).
    cached = redis_client.get("bos:auth:st:" + hashlib.sha256(token.encode()).hexdigest())
    if cached is None:
        return Response('{"error":"unknown token"}', status=401, mimetype="application/json")
    organization_id, customer_id, _token_id, _expires = cached.decode().split("|")
    body = request.get_json()
    with engine.begin() as connection:
        # Resolved once per process: the real endpoint reads it from a cache too.
        feature_id = _feature_ids.get((organization_id, body["feature_key"]))
        if feature_id is None:
            feature_id = connection.execute(
                FEATURE_ID, {"organization_id": organization_id, "key": body["feature_key"]}
            ).scalar_one()
            _feature_ids[(organization_id, body["feature_key"])] = feature_id
        connection.execute(
            USAGE_INSERT,
            {
                "organization_id": organization_id,
                "customer_id": customer_id,
                "feature_id": feature_id,
                "idempotency_key": body["idempotency_key"],
                "quantity": body["quantity"],
            },
        )
    return Response('{"ok":true}', mimetype="application/json")
