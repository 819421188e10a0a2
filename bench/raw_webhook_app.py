"""The raw-stack baseline for webhook ingest: the unavoidable work, written as plainly as it gets.

HMAC-SHA256 of the raw body with `hmac`/`hashlib` (constant-time compare, 300 s tolerance),
`json.loads`, one `INSERT … ON CONFLICT DO NOTHING` into the same `stripe_events` table, one
Redis `LPUSH` of a minimal message (the event id) to a list no worker reads — on the same
gunicorn config (gevent workers, psycopg2 made cooperative) as the real API. No Flask: a bare
WSGI callable, so "BillingOS ingest / this" is what BillingOS costs over the limit of the stack
itself (Python, gunicorn, psycopg2, Postgres, Redis).

    gunicorn --config gunicorn.conf.py bench.raw_webhook_app:app
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

if "gevent" in sys.modules:
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

import redis
from sqlalchemy import create_engine

from app.config import Settings

RAW_QUEUE = "bench_raw"
TOLERANCE_SECONDS = 300

settings = Settings.from_env()
# Autocommit: the INSERT is its own transaction, one round trip (no BEGIN/COMMIT, no pre-ping).
# A fixed pool of DB_POOL_SIZE, as BillingOS's ingest engine (app/db.py): no connection churn.
engine = create_engine(
    settings.database_url,
    pool_size=settings.db_pool_size,
    max_overflow=0,
    isolation_level="AUTOCOMMIT",
)
broker = redis.Redis.from_url(settings.broker_url)
SECRET = settings.stripe_webhook_secret.encode()

INSERT = (
    "INSERT INTO stripe_events (id, stripe_event_id, type, payload, status, attempts, livemode,"
    " received_at, created_at, updated_at)"
    " VALUES (%(id)s, %(event_id)s, %(type)s, CAST(%(payload)s AS jsonb), 'pending', 0, false,"
    " now(), now(), now())"
    " ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id"
)

Respond = Callable[[str, list[tuple[str, str]]], Any]


def _verified(payload: bytes, header: str) -> bool:
    timestamp, signatures = 0, []
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value.encode())
    if timestamp < time.time() - TOLERANCE_SECONDS:
        return False
    expected = hmac.new(SECRET, b"%d.%s" % (timestamp, payload), hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected.encode(), s) for s in signatures)


def _answer(respond: Respond, status: str, body: bytes) -> Iterable[bytes]:
    respond(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], respond: Respond) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/healthz":
        return _answer(respond, "200 OK", b'{"status":"ok"}')
    length = int(environ.get("CONTENT_LENGTH") or 0)
    payload = environ["wsgi.input"].read(length)
    if not _verified(payload, environ.get("HTTP_STRIPE_SIGNATURE", "")):
        return _answer(respond, "400 Bad Request", b'{"code":"invalid_signature"}')
    event = json.loads(payload)
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            INSERT,
            {
                "id": str(uuid.uuid4()),
                "event_id": event["id"],
                "type": event["type"],
                "payload": payload.decode(),
            },
        ).first()
    if row is not None:
        broker.lpush(RAW_QUEUE, event["id"])
    return _answer(respond, "200 OK", b'{"received":true}')
