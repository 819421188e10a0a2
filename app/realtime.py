"""Real-time status: publish after commit, and one Redis subscriber per web process.

Postgres is written first, Redis is told second (DESIGN.md, "Real time"). Redis pub/sub is
at-most-once, so a message is only ever a hint that something newer exists: every client gets
the current snapshot from Postgres when it connects and whenever the subscriber reconnects, and
every checkout message carries the checkout's `version` so a client never goes backwards.

Channels and messages (JSON text, the same objects the HTTP API returns):

    checkout:{checkout_id}   {"type": "checkout.updated", "data": Checkout}
                             Checkout = `checkout_status()` = GET /v1/checkout/{id}/status
    customer:{customer_id}   {"type": "subscription.updated", "data": Subscription, "version"}
                             {"type": "entitlements.updated", "data": [Entitlement], "version"}

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

Subscribing (web processes, `SubscriberHub`)

    One Redis connection per process, read by one greenlet (a thread outside gevent). Channels
    are subscribed on demand, when the first local client watches one, and unsubscribed a grace
    period after the last one leaves. Every local client is a `Watcher`: a mailbox of the newest
    unsent update per key, filled by the hub in O(1) without blocking, so a slow or dead client
    never delays the others (it simply skips intermediate versions). On a lost connection the
    hub reconnects with exponential backoff and jitter, resubscribes, and asks every watcher to
    reload its snapshot from Postgres. `app/streams/service.py` turns a watcher into the
    websocket/SSE streams.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
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
from app.subscriptions.schemas import subscription_out
from models import CheckoutSession, Subscription

log = logging.getLogger(__name__)

CHECKOUT_UPDATED = "checkout.updated"
SUBSCRIPTION_UPDATED = "subscription.updated"
ENTITLEMENTS_UPDATED = "entitlements.updated"

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


# --------------------------------------------------------------------------- subscribing


@dataclass(frozen=True)
class Update:
    """One message as a client receives it, parsed once per process and shared by watchers."""

    type: str
    # Conflation key: a newer update with the same key replaces an unsent older one.
    key: str
    version: int | None
    frame: str  # the websocket text message
    status: str | None = None  # a checkout's status

    # The wire forms are derived on first use and then shared by every client of the update
    # (`cached_property` stores into the instance, which a frozen dataclass allows). A client's
    # own snapshot builds only the one its stream needs, and is freed once sent.

    @cached_property
    def data_json(self) -> str:
        """The SSE `data:` line: the message's `data`, compact."""
        return json.dumps(json.loads(self.frame)["data"], separators=(",", ":"))

    @cached_property
    def ws_frame(self) -> bytes:
        """`frame` as one complete websocket frame: a broadcast then costs each client one
        socket write, not a framing."""
        return websocket_text_frame(self.frame)


def websocket_text_frame(text: str) -> bytes:
    """One final text frame as a server sends it (no mask, no extension)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


def parse_update(raw: bytes | str) -> Update:
    text = raw.decode() if isinstance(raw, bytes) else raw
    message = json.loads(text)
    message_type = message["type"]
    data = message["data"]
    version = message.get("version")
    status = None
    if message_type == CHECKOUT_UPDATED:
        key, version, status = "checkout", data["version"], data["status"]
    elif message_type == SUBSCRIPTION_UPDATED:
        key = f"subscription:{data['id']}"
    else:
        key = message_type
    return Update(message_type, key, version, text, status)


def newer_version(version: int | None, than: int | None) -> bool:
    """Whether `version` supersedes `than`; an unversioned message is always passed on."""
    return version is None or than is None or version > than


def is_newer(update: Update, than: Update | None) -> bool:
    return than is None or newer_version(update.version, than.version)


class Watcher:
    """One local client's mailbox on one channel.

    `deliver` (the hub) keeps only the newest unsent update per key and never blocks; `take`
    (the client's own greenlet) waits for it. `wake` may be shared with the connection so a
    closing client also wakes its greenlet.
    """

    MAX_KEYS = 64
    # One lock for every watcher of the process rather than one each (thousands of idle
    # clients): it guards a few dict operations, never held across a wait.
    _lock = threading.Lock()

    def __init__(self, channel: str, wake: threading.Event | None = None) -> None:
        self.channel = channel
        self._wake = wake or threading.Event()
        self._pending: dict[str, Update] = {}
        self._resync = False

    def deliver(self, update: Update) -> None:
        with self._lock:
            current = self._pending.get(update.key)
            if current is not None and not is_newer(update, current):
                return
            if current is None and len(self._pending) >= self.MAX_KEYS:
                # Too far behind to be worth catching up message by message: reload instead.
                self._pending.clear()
                self._resync = True
            else:
                self._pending[update.key] = update
        self._wake.set()

    def request_resync(self) -> None:
        with self._lock:
            self._resync = True
        self._wake.set()

    def take(self, timeout: float) -> tuple[bool, list[Update]]:
        """Wait up to `timeout` s; returns (reload the snapshot?, pending updates)."""
        if not self._wake.wait(timeout):
            return False, []
        self._wake.clear()
        with self._lock:
            resync, self._resync = self._resync, False
            updates = list(self._pending.values())
            self._pending.clear()
        return resync, updates


@dataclass(frozen=True)
class RealtimeSettings:
    """Real-time limits; each comes from the environment variable named in `from_env`."""

    ws_ping_seconds: float = 20.0
    sse_ping_seconds: float = 15.0
    # A stream with nothing but pings for this long is closed; the client reconnects and gets
    # the snapshot. A checkout lives one hour, so the default outlives it.
    idle_timeout_seconds: float = 3900.0
    # A client that cannot take one frame within this is disconnected.
    send_timeout_seconds: float = 10.0
    redis_ping_seconds: float = 15.0
    redis_read_timeout_seconds: float = 45.0
    reconnect_backoff_max_seconds: float = 5.0
    subscribe_timeout_seconds: float = 5.0
    unsubscribe_grace_seconds: float = 30.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RealtimeSettings:
        env = os.environ if environ is None else environ
        names = {
            "ws_ping_seconds": "REALTIME_WS_PING_SECONDS",
            "sse_ping_seconds": "REALTIME_SSE_PING_SECONDS",
            "idle_timeout_seconds": "REALTIME_IDLE_TIMEOUT_SECONDS",
            "send_timeout_seconds": "REALTIME_SEND_TIMEOUT_SECONDS",
            "redis_ping_seconds": "REALTIME_REDIS_PING_SECONDS",
            "redis_read_timeout_seconds": "REALTIME_REDIS_READ_TIMEOUT_SECONDS",
            "reconnect_backoff_max_seconds": "REALTIME_RECONNECT_BACKOFF_MAX_SECONDS",
            "subscribe_timeout_seconds": "REALTIME_SUBSCRIBE_TIMEOUT_SECONDS",
            "unsubscribe_grace_seconds": "REALTIME_UNSUBSCRIBE_GRACE_SECONDS",
        }
        values: dict[str, float] = {}
        for field_name, var in names.items():
            raw = env.get(var)
            if raw:
                try:
                    values[field_name] = float(raw)
                except ValueError:
                    raise SystemExit(f"BillingOS: setting {var} must be a number") from None
        return cls(**values)


# Sent after (re)subscribing: its PONG arrives once every SUBSCRIBE before it is in force,
# which is when a reloaded snapshot can no longer miss a change.
_RESYNC_MARK = b"billingos:resync"
_CONTROL_CHANNEL = "billingos:realtime:control"


class SubscriberHub:
    """The process's one Redis pub/sub connection, fanning messages out to local watchers."""

    def __init__(self, redis_url: str, settings: RealtimeSettings) -> None:
        self.settings = settings
        self._pool = redis.ConnectionPool.from_url(
            redis_url,
            socket_connect_timeout=2,
            # Silence longer than this (our own PINGs get answered) means a dead connection.
            socket_timeout=settings.redis_read_timeout_seconds,
            socket_keepalive=True,
            health_check_interval=0,
            protocol=2,
            retry=Retry(NoBackoff(), 0),
        )
        self._lock = threading.RLock()  # guards the maps below and every write to the socket
        self._watchers: dict[str, set[Watcher]] = {}
        self._confirmed: dict[str, threading.Event] = {}
        self._idle_since: dict[str, float] = {}
        self._conn: Any = None
        self._connected = threading.Event()
        self._pid: int | None = None
        self._stopped = False
        self.reconnects = 0

    # -- lifecycle

    def ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked child inherits nothing usable: fresh state, fresh connection.
            self._watchers.clear()
            self._confirmed.clear()
            self._idle_since.clear()
            self._conn = None
            self._connected.clear()
            self._pid = os.getpid()
            for target, name in ((self._read_loop, "reader"), (self._maintain, "maintainer")):
                thread = threading.Thread(target=target, name=f"realtime-{name}", daemon=True)
                thread.start()
        # Give the first connection a moment so the first client's snapshot is not reloaded.
        self._connected.wait(self.settings.subscribe_timeout_seconds)

    def stop(self) -> None:
        self._stopped = True
        with self._lock:
            if self._conn is not None:
                self._conn.disconnect()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def client_count(self) -> int:
        return sum(len(w) for w in list(self._watchers.values()))

    # -- watchers

    def watch(self, watcher: Watcher) -> None:
        """Register `watcher`; returns once its channel's subscription is in force.

        When Redis is unreachable it returns at once: the watcher is subscribed and told to
        reload its snapshot as soon as the connection is back.
        """
        self.ensure_started()
        channel = watcher.channel
        with self._lock:
            self._watchers.setdefault(channel, set()).add(watcher)
            self._idle_since.pop(channel, None)
            confirmed = self._confirmed.get(channel)
            if confirmed is None and self._conn is not None:
                confirmed = self._confirmed[channel] = threading.Event()
                try:
                    self._conn.send_command("SUBSCRIBE", channel, check_health=False)
                except (redis.RedisError, OSError):
                    confirmed.set()  # the reader reconnects and resyncs everyone
        if confirmed is not None:
            confirmed.wait(self.settings.subscribe_timeout_seconds)

    def unwatch(self, watcher: Watcher) -> None:
        channel = watcher.channel
        with self._lock:
            watchers = self._watchers.get(channel)
            if watchers is None:
                return
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[channel]
                # Unsubscribed later by the maintainer: a client that reconnects at once (a
                # page reload) finds the subscription still in force.
                self._idle_since[channel] = time.monotonic()

    # -- the reader greenlet

    def _read_loop(self) -> None:
        pid = os.getpid()
        backoff = 0.05
        while not self._stopped and self._pid == pid:
            try:
                conn = self._open()
                backoff = 0.05
                self._listen(conn)
            except (redis.RedisError, OSError) as exc:
                log.warning(
                    "realtime: Redis subscription lost (%s); reconnecting", type(exc).__name__
                )
            except Exception:
                log.exception("realtime: subscriber failed; reconnecting")
            finally:
                self._close()
            if self._stopped:
                return
            # Exponential backoff with full jitter, so a fleet of web processes does not
            # reconnect in lockstep after a Redis restart.
            time.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, self.settings.reconnect_backoff_max_seconds)

    def _open(self) -> Any:
        conn = self._pool.make_connection()
        conn.connect()
        with self._lock:
            channels = [_CONTROL_CHANNEL, *self._watchers]
            self._confirmed = {channel: threading.Event() for channel in self._watchers}
            self._idle_since.clear()
            conn.send_command("SUBSCRIBE", *channels, check_health=False)
            conn.send_command("PING", _RESYNC_MARK, check_health=False)
            self._conn = conn
        return conn

    def _close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            self._connected.clear()
            # Nobody may wait for a confirmation that will not come; they get a resync instead.
            for confirmed in self._confirmed.values():
                confirmed.set()
            self._confirmed = {}
        if conn is not None:
            conn.disconnect()

    def _listen(self, conn: Any) -> None:
        while not self._stopped:
            response = conn.read_response()
            kind = response[0]
            if kind == b"message":
                self._dispatch(response[1].decode(), response[2])
            elif kind == b"subscribe":
                confirmed = self._confirmed.get(response[1].decode())
                if confirmed is not None:
                    confirmed.set()
            elif kind == b"pong" and response[1] == _RESYNC_MARK:
                if self.reconnects or self.client_count():
                    log.info("realtime: subscribed; reloading %d client(s)", self.client_count())
                self.reconnects += 1
                self._connected.set()
                self._resync_all()

    def _dispatch(self, channel: str, raw: bytes) -> None:
        watchers = self._watchers.get(channel)
        if not watchers:
            return
        try:
            update = parse_update(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("realtime: dropped a malformed message on %s", channel.split(":")[0])
            return
        for watcher in tuple(watchers):
            watcher.deliver(update)

    def _resync_all(self) -> None:
        for watchers in list(self._watchers.values()):
            for watcher in tuple(watchers):
                watcher.request_resync()

    # -- the maintainer greenlet: keep-alive PINGs and lazy unsubscription

    def _maintain(self) -> None:
        pid = os.getpid()
        interval = self.settings.redis_ping_seconds
        while not self._stopped and self._pid == pid:
            time.sleep(min(interval, self.settings.unsubscribe_grace_seconds))
            now = time.monotonic()
            with self._lock:
                idle = [
                    channel
                    for channel, since in self._idle_since.items()
                    if channel not in self._watchers
                    and now - since >= self.settings.unsubscribe_grace_seconds
                ]
                for channel in idle:
                    self._idle_since.pop(channel, None)
                    self._confirmed.pop(channel, None)
                if self._conn is None:
                    continue
                try:
                    if idle:
                        self._conn.send_command("UNSUBSCRIBE", *idle, check_health=False)
                    self._conn.send_command("PING", check_health=False)
                except (redis.RedisError, OSError):
                    pass  # the reader sees the broken connection and reconnects


# --------------------------------------------------------------------------- wiring


@dataclass
class Realtime:
    publisher: RealtimePublisher
    settings: RealtimeSettings
    redis_url: str
    _hub: SubscriberHub | None = None

    @property
    def hub(self) -> SubscriberHub:
        """The subscriber, created on first use: only processes that serve streams open it."""
        if self._hub is None:
            self._hub = SubscriberHub(self.redis_url, self.settings)
        return self._hub


def init_realtime(app: Flask, redis_url: str) -> Realtime:
    """Publish committed changes from this process; serve streams from `realtime_of(app).hub`."""
    global _default_publisher
    client = redis.Redis.from_url(
        redis_url,
        # A committed request must not wait long on a Redis that is down; one immediate retry
        # covers a pooled connection that a Redis restart left dead.
        socket_connect_timeout=0.5,
        socket_timeout=1.0,
        retry=Retry(NoBackoff(), 1),
    )
    realtime = Realtime(RealtimePublisher(client), RealtimeSettings.from_env(), redis_url)
    app.extensions[_EXTENSION] = realtime
    # Outside any app context (rare: scripts) the process's first app publishes.
    if _default_publisher is None:
        _default_publisher = realtime.publisher
    _listen_once()
    return realtime


def realtime_of(app: Flask) -> Realtime:
    realtime: Realtime = app.extensions[_EXTENSION]
    return realtime
