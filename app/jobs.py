"""Background jobs by name: the one list of task names, and how the product sends them.

The product (`app`) never imports `tasks`: it sends a task by its name through the current
Celery app, and `tasks/*.py` register their functions under these same names. So the worker
code can import services freely without an import cycle, and `lint-imports` holds the line.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import Any

import redis
from celery import current_app
from flask import Flask
from flask import current_app as current_flask_app
from sqlalchemy.orm import Session

from app.db import on_commit
from app.logging_setup import context_headers

CATALOG_MIRROR_PRODUCT = "catalog.mirror_product"

CHECKOUT_PREPARE = "checkout.prepare"
CHECKOUT_CONFIRM = "checkout.confirm"
CHECKOUT_RECONCILE = "checkout.reconcile"
CHECKOUT_EXPIRE = "checkout.expire"
CHECKOUT_EXPIRE_OVERDUE = "checkout.expire_overdue"
CHECKOUT_REFUND_ORPHANED_PAYMENT = "checkout.refund_orphaned_payment"

STRIPE_PROCESS_EVENT = "stripe.process_event"

MAINTENANCE_REQUEUE_UNPROCESSED_EVENTS = "maintenance.requeue_unprocessed_events"
MAINTENANCE_RECONCILE_STUCK_CHECKOUTS = "maintenance.reconcile_stuck_checkouts"
MAINTENANCE_PRUNE_PROCESSED_EVENTS = "maintenance.prune_processed_events"
MAINTENANCE_BACKFILL_STRIPE_EVENTS = "maintenance.backfill_stripe_events"
MAINTENANCE_APPLY_RETENTION = "maintenance.apply_retention"

USAGE_ROLL_UP_LEDGER = "usage.roll_up_ledger"

ALL = frozenset(
    {
        CATALOG_MIRROR_PRODUCT,
        CHECKOUT_PREPARE,
        CHECKOUT_CONFIRM,
        CHECKOUT_RECONCILE,
        CHECKOUT_EXPIRE,
        CHECKOUT_EXPIRE_OVERDUE,
        CHECKOUT_REFUND_ORPHANED_PAYMENT,
        STRIPE_PROCESS_EVENT,
        MAINTENANCE_REQUEUE_UNPROCESSED_EVENTS,
        USAGE_ROLL_UP_LEDGER,
        MAINTENANCE_RECONCILE_STUCK_CHECKOUTS,
        MAINTENANCE_PRUNE_PROCESSED_EVENTS,
        MAINTENANCE_BACKFILL_STRIPE_EVENTS,
        MAINTENANCE_APPLY_RETENTION,
    }
)


def send(name: str, *args: Any, countdown: float | None = None, **kwargs: Any) -> None:
    """Send task `name` now, through the current Celery app."""
    current_app.send_task(name, args=args, kwargs=kwargs, countdown=countdown)


def enqueue_after_commit(
    session: Session,
    name: str,
    *args: Any,
    countdown: float | None = None,
    **kwargs: Any,
) -> None:
    """Send task `name` once the session's transaction has committed; never if it rolls back.

    A task sent before commit could run before its row is visible and find nothing; a task sent
    for a transaction that then rolled back would act on a row that never existed.
    """
    on_commit(session, lambda: send(name, *args, countdown=countdown, **kwargs))


# ---------------------------------------------------------------------------- the hot path
#
# `send_task` builds each message through kombu (routing, headers, serializer and compression
# lookups, a producer from the pool): on the webhook endpoint that was more CPU than the
# signature, the JSON parse and the insert together. `publish` writes the same message —
# Celery's task protocol 2 as the Redis transport stores it, so the worker, its acks_late
# bookkeeping and Flower's task events are those of any other task — from a template, with one
# LPUSH. Only for tasks sent now, with positional string arguments, to the default queue.
# https://docs.celeryq.dev/en/stable/internals/protocol.html#version-2

DEFAULT_QUEUE = "celery"
# The body's third element: no callbacks, errbacks, chain or chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_TEMPLATE = json.dumps(
    {
        "body": "@BODY@",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": "@TASK@",
            "id": "@ID@",
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": "@ID@",
            "parent_id": None,
            "argsrepr": "@ARGSREPR@",
            "kwargsrepr": "{}",
            "origin": "@ORIGIN@",
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": "@ID@",
            "reply_to": "@ID@",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "@QUEUE@"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": "@TAG@",
        },
    }
)
# The placeholders become %s slots (a literal % in the template is escaped first).
_FORMAT = _TEMPLATE.replace("%", "%%")
for _slot in ("@BODY@", "@TASK@", "@ID@", "@ARGSREPR@", "@ORIGIN@", "@QUEUE@", "@TAG@"):
    _FORMAT = _FORMAT.replace(_slot, "%(" + _slot.strip("@").lower() + ")s")
# Extra headers (the log context: request id…) go after the protocol's own.
_FORMAT = _FORMAT.replace('"stamps": {}}', '"stamps": {}%(extra)s}')
assert "%(extra)s" in _FORMAT


def task_message(
    name: str, *args: str, queue: str = DEFAULT_QUEUE, headers: dict[str, str] | None = None
) -> bytes:
    """The broker message `send_task(name, args)` would store for the Redis transport.

    `headers` are added to the protocol's own, as `before_task_publish` receivers add theirs.
    """
    task_id = str(uuid.uuid4())
    body = json.dumps([list(args), {}, _EMBED]).encode()
    return (
        _FORMAT
        % {
            "body": base64.b64encode(body).decode(),
            "task": name,
            "id": task_id,
            # JSON-escaped without its quotes: the template already has them.
            "argsrepr": json.dumps(repr(args))[1:-1],
            "origin": f"gen{os.getpid()}@{_HOSTNAME}",
            "queue": queue,
            "tag": str(uuid.uuid4()),
            "extra": ", " + json.dumps(headers)[1:-1] if headers else "",
        }
    ).encode()


_HOSTNAME = socket.gethostname()


def init_publisher(app: Flask, broker_url: str, shared: redis.Redis | None = None) -> None:
    """The Redis client `publish` writes to: `shared` when the broker is that same Redis."""
    app.extensions["broker_redis"] = shared or redis.Redis.from_url(
        broker_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )


def broker_of(app: Flask) -> redis.Redis:
    client: redis.Redis = app.extensions["broker_redis"]
    return client


def publish(name: str, *args: str, client: redis.Redis | None = None) -> None:
    """Send task `name` now with string arguments: one LPUSH of a pre-built message.

    To the app's broker (`client`, or the current app's when not given).
    """
    message = task_message(name, *args, headers=context_headers())
    (client or broker_of(current_flask_app)).lpush(DEFAULT_QUEUE, message)
