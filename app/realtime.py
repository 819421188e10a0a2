"""Real-time status: publish after commit.

Postgres is written first, Redis is told second. Redis pub/sub is
at-most-once, so a message is only ever a hint that something newer exists: every client gets
the current snapshot from Postgres when it connects and whenever the subscriber reconnects, and
every checkout message carries the checkout's `version` so a client never goes backwards.

Channels and messages (JSON text, the same objects the HTTP API returns):

    checkout:{checkout_id}   {"type": "checkout.updated", "data": Checkout}
                             Checkout = `checkout_status()` = GET /v1/checkout/{id}/status
    customer:{customer_id}   {"type": "subscription.updated", "data": Subscription, "version"}
                             {"type": "entitlements.updated", "data": [Entitlement], "version"}
                             {"type": "usage.updated", "data": TrackUsage, "version"}
                             (one feature's total this period; streams send at most a few a
                             second per customer, the latest total winning)

Versions order messages of one key (a checkout: `checkout.version`; a subscription:
`subscriptions.version`, bumped on every change of the row by a flush hook in
models/subscription.py; the entitlement list: `customers.entitlements_version`). All three live
in Postgres, so they never go backwards whatever happens to Redis.

Publishing (any process that writes: web, Celery workers, CLI, tests)

    Automatic, so no caller can forget: a SQLAlchemy flush hook on `db.session_factory` notices
    every CheckoutSession that is inserted or whose `version` changed (`transition()` and
    `update()` bump it), and every Subscription row inserted or changed. At the end of that flush
    it serializes the rows (queries are still allowed there; after the commit they are not) and
    `app.db.on_commit` publishes the messages once the outermost transaction has committed. A
    rolled-back transaction or savepoint publishes nothing. Several flushes of one transaction
    publish the last state of each object once.

    Explicit, for entitlements (app/entitlements/service.py computes the list and its version):
    `publish_entitlements_updated(customer_id, entitlements, version)` after commit.

    Publishing never fails the committed request or task: Redis unreachable → one warning, and
    the clients catch up from the Postgres snapshot when the subscriber reconnects.

Subscribing happens in the web processes only: `app/streams/hub.py` (one Redis subscriber per
process) and `app/streams/service.py` (the websocket/SSE streams).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, current_app, has_app_context
from pydantic import BaseModel
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, SessionTransaction

from app.checkout.schemas import CheckoutOut, checkout_out
from app.db import db, on_commit
from app.redis_client import defer
from app.subscriptions.schemas import subscription_out
from models import CheckoutSession, Subscription

log = logging.getLogger(__name__)

CHECKOUT_UPDATED = "checkout.updated"
SUBSCRIPTION_UPDATED = "subscription.updated"
ENTITLEMENTS_UPDATED = "entitlements.updated"
USAGE_UPDATED = "usage.updated"

_EXTENSION = "billingos.realtime"


def checkout_channel(checkout_id: uuid.UUID | str) -> str:
    return f"checkout:{checkout_id}"


def customer_channel(customer_id: uuid.UUID | str) -> str:
    return f"customer:{customer_id}"


# --------------------------------------------------------------------------- serialization


def checkout_status(session: Session, checkout: CheckoutSession) -> CheckoutOut:
    """The Checkout object of GET /v1/checkout/{id}/status, with the subscription it created.

    Same rule as `app.checkout.service.subscription_of`: only a checkout that made a Stripe
    subscription has one.
    """
    return checkout_out(checkout, _subscriptions_of(session, [checkout]).get(checkout.id))


def _subscriptions_of(
    session: Session, checkouts: Sequence[CheckoutSession]
) -> dict[uuid.UUID, Subscription]:
    ids = [c.id for c in checkouts if c.stripe_subscription_id is not None]
    if not ids:
        return {}
    rows = session.execute(
        select(Subscription).where(Subscription.checkout_session_id.in_(ids))
    ).scalars()
    return {s.checkout_session_id: s for s in rows if s.checkout_session_id is not None}


def _frame(message_type: str, data_json: str, version: int | None = None) -> str:
    # Built around the model's own JSON so the frame's `data` is byte-for-byte the HTTP body.
    tail = f',"version":{version}' if version is not None else ""
    return f'{{"type":"{message_type}","data":{data_json}{tail}}}'


def checkout_message(checkout: CheckoutOut) -> str:
    return _frame(CHECKOUT_UPDATED, checkout.model_dump_json())


def subscription_message(subscription: Subscription) -> str:
    return _frame(
        SUBSCRIPTION_UPDATED,
        subscription_out(subscription).model_dump_json(),
        subscription.version,
    )


def entitlements_message(
    entitlements: Sequence[BaseModel | dict[str, Any]], version: int | None = None
) -> str:
    items = [e.model_dump(mode="json") if isinstance(e, BaseModel) else e for e in entitlements]
    data_json = json.dumps(items, separators=(",", ":"), default=str)
    return _frame(ENTITLEMENTS_UPDATED, data_json, version)


# --------------------------------------------------------------------------- publishing


class RealtimePublisher:
    """PUBLISHes a batch of messages in one round trip; failures are logged, never raised."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def publish(self, messages: Iterable[tuple[str, str]]) -> int:
        batch = list(messages)
        if not batch:
            return 0

        def publish_all(pipe: redis.client.Pipeline) -> None:
            for channel, message in batch:
                pipe.publish(channel, message)

        if defer(self.client, publish_all):
            return len(batch)
        try:
            pipe = self.client.pipeline(transaction=False)
            for channel, message in batch:
                pipe.publish(channel, message)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            # The rows are committed; clients reload them from Postgres when the subscriber
            # reconnects, so a lost message costs latency, never correctness.
            log.warning(
                "realtime: could not publish %d message(s): %s", len(batch), type(exc).__name__
            )
            return 0
        return len(batch)


_default_publisher: RealtimePublisher | None = None


def _publisher() -> RealtimePublisher | None:
    if has_app_context():
        realtime = current_app.extensions.get(_EXTENSION)
        if realtime is not None:
            publisher: RealtimePublisher = realtime.publisher
            return publisher
    return _default_publisher


def publish(messages: Iterable[tuple[str, str]]) -> int:
    """Publish now (the caller has committed). Returns how many messages Redis accepted."""
    publisher = _publisher()
    if publisher is None:
        return 0
    return publisher.publish(messages)


def publish_entitlements_updated(
    customer_id: uuid.UUID | str,
    entitlements: Sequence[BaseModel | dict[str, Any]],
    version: int | None = None,
) -> int:
    """Tell the customer's clients their entitlement list, as GET /v1/customer/entitlements.

    Call after commit. `version` (`customers.entitlements_version`) lets a client drop a list
    older than one it already has.
    """
    return publish([(customer_channel(customer_id), entitlements_message(entitlements, version))])


def publish_usage_updated(customer_id: uuid.UUID | str, usage: BaseModel, version: int) -> int:
    """Tell the customer's clients a feature's new total (`usage_aggregates.version` orders a
    period's totals). Call after commit."""
    return publish(
        [(customer_channel(customer_id), _frame(USAGE_UPDATED, usage.model_dump_json(), version))]
    )


# The flush hook: collect at `after_flush` (attribute history is still there), serialize at
# `after_flush_postexec` (the rows are in the database, queries allowed), publish after commit.
# https://docs.sqlalchemy.org/en/20/orm/events.html#sqlalchemy.orm.SessionEvents.after_flush

_CHANGED_KEY = "billingos.realtime.changed"
_BATCHES_KEY = "billingos.realtime.batches"

# A batch maps (channel, key) → message; a later flush in the same transaction overwrites.
Batch = dict[tuple[str, str], str]


def _collect_changes(session: Session, _flush_context: Any) -> None:
    checkouts: list[CheckoutSession] = []
    subscriptions: list[Subscription] = []
    for obj in session.new:
        if isinstance(obj, CheckoutSession):
            checkouts.append(obj)
        elif isinstance(obj, Subscription):
            subscriptions.append(obj)
    for obj in session.dirty:
        if isinstance(obj, CheckoutSession):
            # Only a version bump is a visible change (see CheckoutSession.transition/update).
            if inspect(obj).attrs.version.history.has_changes():
                checkouts.append(obj)
        elif isinstance(obj, Subscription) and session.is_modified(obj):
            subscriptions.append(obj)
    if checkouts or subscriptions:
        session.info[_CHANGED_KEY] = (checkouts, subscriptions)


def _serialize_changes(session: Session, _flush_context: Any) -> None:
    changed = session.info.pop(_CHANGED_KEY, None)
    if changed is None:
        return
    checkouts, subscriptions = changed
    batch: Batch = {}
    try:
        by_checkout = _subscriptions_of(session, checkouts)
        for checkout in checkouts:
            status = checkout_out(checkout, by_checkout.get(checkout.id))
            batch[(checkout_channel(checkout.id), "checkout")] = checkout_message(status)
        for subscription in subscriptions:
            key = f"subscription:{subscription.id}"
            batch[(customer_channel(subscription.customer_id), key)] = subscription_message(
                subscription
            )
    except Exception:
        # Serializing must never break the writer's transaction.
        log.exception("realtime: could not serialize changed rows")
        return
    _add_to_batch(session, batch)


def _add_to_batch(session: Session, messages: Batch) -> None:
    if not messages:
        return
    # One batch per (savepoint) transaction: `on_commit` drops the batch of a savepoint that
    # rolls back, and merging flushes of one transaction publishes each object's last state.
    if not session.in_transaction():
        session.begin()
    transaction = session.get_nested_transaction() or session.get_transaction()
    batches: list[tuple[SessionTransaction | None, Batch]] = session.info.setdefault(
        _BATCHES_KEY, []
    )
    for owner, batch in batches:
        if owner is transaction:
            batch.update(messages)
            return
    batch = dict(messages)
    batches.append((transaction, batch))
    on_commit(session, lambda: publish((channel, m) for (channel, _key), m in batch.items()))


def _forget_batches_after_commit(session: Session) -> None:
    if session.get_nested_transaction() is None:
        session.info.pop(_BATCHES_KEY, None)


def _forget_batches_after_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        session.info.pop(_BATCHES_KEY, None)
        session.info.pop(_CHANGED_KEY, None)


def _listen_once() -> None:
    factory = db.session_factory
    hooks: tuple[tuple[str, Callable[..., None]], ...] = (
        ("after_flush", _collect_changes),
        ("after_flush_postexec", _serialize_changes),
        ("after_commit", _forget_batches_after_commit),
        ("after_soft_rollback", _forget_batches_after_rollback),
    )
    for name, fn in hooks:
        if not event.contains(factory, name, fn):
            event.listen(factory, name, fn)


# --------------------------------------------------------------------------- wiring


@dataclass
class Realtime:
    publisher: RealtimePublisher


def init_realtime(app: Flask, redis_url: str) -> Realtime:
    """Publish committed changes from this process (streams: `app.streams.hub.hub_of`)."""
    global _default_publisher
    client = redis.Redis.from_url(
        redis_url,
        # A committed request must not wait long on a Redis that is down; one immediate retry
        # covers a pooled connection that a Redis restart left dead.
        socket_connect_timeout=0.5,
        socket_timeout=1.0,
        retry=Retry(NoBackoff(), 1),
    )
    realtime = Realtime(RealtimePublisher(client))
    app.extensions[_EXTENSION] = realtime
    # Outside any app context (rare: scripts) the process's first app publishes.
    if _default_publisher is None:
        _default_publisher = realtime.publisher
    _listen_once()
    return realtime


def realtime_of(app: Flask) -> Realtime:
    realtime: Realtime = app.extensions[_EXTENSION]
    return realtime
