"""The baseline for webhook ingest: verify + one insert + one enqueue, and nothing else.

Served exactly as the real API is (gunicorn, gunicorn.conf.py, gevent workers, psycopg2 made
cooperative), against the same database table and the same Redis broker, so the ratio
"BillingOS ingest / this" isolates what BillingOS adds on top of the unavoidable work: the
signature check on the raw body (https://docs.stripe.com/webhooks#verify-events), one row in
the `stripe_events` inbox, one Celery message. The message goes to a queue no worker consumes
(`bench_baseline`), which the harness deletes afterwards.

    gunicorn --config gunicorn.conf.py bench.baseline_webhook_app:app
"""

from __future__ import annotations

import json
import sys

if "gevent" in sys.modules:
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

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
