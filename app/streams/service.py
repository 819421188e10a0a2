"""Status streams: a snapshot from Postgres, then the changes the subscriber hub fans out.

A stream is an iterator of `Update` (send it) and `PING` (nothing happened for a ping interval:
send a keep-alive). The order of operations is what makes it exact:

0. (the routes) the checkout is the caller's (`own_checkout_id`) and the caller is under the
   open-stream caps (app/streams/leases.py) — before anything is subscribed;
1. watch the channel (the hub confirms the Redis subscription is in force);
2. read the snapshot from Postgres — any change committed after this read is published after
   step 1, so it reaches the watcher;
3. forward updates, dropping any whose `version` is not newer than what was sent;
4. when the hub reconnected to Redis (messages may have been lost) reload the snapshot.

A checkout stream ends after a terminal status. Every stream ends when its session token
expires, when it is revoked (checked when the stream wakes with something to send, at most
once a second, and at every ping), or after `idle_timeout_seconds` without a change (pings do
not count). While it runs it renews its lease under the caps; `close()` gives it back.
Database connections are taken only for a snapshot and released at once: an idle stream holds
no pooled connection.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select

from app.db import db
from app.metrics import STREAM_CONNECTIONS
from app.realtime import (
    USAGE_UPDATED,
    checkout_channel,
    checkout_message,
    checkout_status,
    customer_channel,
    entitlements_message,
    subscription_message,
)
from app.streams.hub import SubscriberHub, Update, Watcher, is_newer, newer_version, parse_update
from app.streams.leases import Lease
from models import CheckoutSession, Subscription
from models.base import utcnow
from models.checkout import TERMINAL_STATUSES


class _Ping:
    def __repr__(self) -> str:
        return "PING"


PING: Final = _Ping()

# Why a stream ended (websocket close code / log line).
TERMINAL = "terminal"
IDLE = "idle"
TOKEN_EXPIRED = "token_expired"
TOKEN_REVOKED = "token_revoked"
CLIENT_GONE = "client_gone"
NOT_FOUND = "not_found"


# How often a busy stream asks Redis whether its token was revoked (an idle one: every ping).
REVOCATION_CHECK_SECONDS = 1.0
# Usage totals can change hundreds of times a second for a busy customer: a stream sends them
# at most this often, holding only the newest total per feature in between (latest wins).
USAGE_MIN_INTERVAL_SECONDS = 0.25


def _parse_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def own_checkout_id(raw_id: str, customer_id: uuid.UUID) -> uuid.UUID | None:
    """The checkout's id if it exists and is this customer's: asked before anything is
    subscribed or counted, so a foreign or made-up id costs one indexed read and nothing more."""
    checkout_id = _parse_id(raw_id)
    if checkout_id is None:
        return None
    try:
        found: uuid.UUID | None = db.session.execute(
            select(CheckoutSession.id).where(
                CheckoutSession.id == checkout_id, CheckoutSession.customer_id == customer_id
            )
        ).scalar_one_or_none()
        return found
    finally:
        db.session.remove()


def load_checkout_snapshot(checkout_id: uuid.UUID, customer_id: uuid.UUID) -> Update | None:
    """The checkout as GET /v1/checkout/{id}/status shows it, if it is this customer's."""
    session = db.session()
    try:
        checkout = session.execute(
            select(CheckoutSession).where(
                CheckoutSession.id == checkout_id, CheckoutSession.customer_id == customer_id
            )
        ).scalar_one_or_none()
        if checkout is None:
            return None
        return parse_update(checkout_message(checkout_status(session, checkout)))
    finally:
        db.session.remove()  # hand the connection back: the stream may idle for an hour


def load_customer_snapshot(customer_id: uuid.UUID) -> list[Update]:
    """Every subscription of the customer, then the entitlement list in force.

    The entitlements version is read BEFORE the list, in the same session: every change bumps
    `customers.entitlements_version` in the transaction that makes it, so a message whose
    version is not above the one read here describes a change the list already contains.
    """
    from app.entitlements.service import entitlements_version, load_entitlements

    session = db.session()
    try:
        version = entitlements_version(session, customer_id)
        subscriptions = session.execute(
            select(Subscription)
            .where(Subscription.customer_id == customer_id)
            .order_by(Subscription.created_at)
        ).scalars()
        updates = [parse_update(subscription_message(s)) for s in subscriptions]
        entitlements = load_entitlements(session, customer_id, utcnow())
        updates.append(parse_update(entitlements_message(entitlements, version)))
        return updates
    finally:
        db.session.remove()


@dataclass(frozen=True)
class StreamOptions:
    """How long a stream may idle, how often it pings, and how it notices a departed client."""

    ping_seconds: float
    idle_timeout_seconds: float
    token_expires_at: datetime | None = None
    # True once the session token is revoked; checked when the stream wakes and at each ping.
    token_revoked: Callable[[], bool] = lambda: False
    # True once the client has gone (websocket closed); checked whenever the stream wakes.
    client_gone: Callable[[], bool] = lambda: False
    # An event the connection sets when the client sends or closes, so the stream wakes at once.
    wake: threading.Event | None = None
    # The stream's slot under the connection caps: renewed while it runs, released at its end.
    lease: Lease | None = None


class StatusStream:
    """One client's stream on one channel: `open()`, iterate, then read `end_reason`."""

    def __init__(
        self,
        hub: SubscriberHub,
        channel: str,
        load_snapshot: Callable[[], list[Update] | None],
        options: StreamOptions,
        *,
        ends_after_terminal: bool = False,
    ) -> None:
        self._hub = hub
        self._load_snapshot = load_snapshot
        self._options = options
        self._ends_after_terminal = ends_after_terminal
        self.watcher = Watcher(channel, wake=options.wake)
        # The version last sent per key (only that is compared; the updates themselves, a
        # client's own snapshot above all, are freed once sent).
        self._sent: dict[str, int | None] = {}
        self._snapshot: list[Update] | None = None
        # Usage totals waiting for their next send slot, newest per key.
        self._held_usage: dict[str, Update] = {}
        self._usage_sent_at = float("-inf")
        self._released = False
        self.end_reason: str | None = None
        # Counted in the open-streams gauge between a successful open() and close().
        self._counted = False

    def open(self) -> bool:
        """Subscribe, then read the snapshot; False (nothing held) if there is nothing to see."""
        try:
            self._hub.watch(self.watcher)
            snapshot = self._load_snapshot()
        except BaseException:
            self.close()
            raise
        if snapshot is None:
            self.close()
            self.end_reason = NOT_FOUND
            return False
        self._snapshot = snapshot
        STREAM_CONNECTIONS.inc()
        self._counted = True
        return True

    def close(self) -> None:
        """Idempotent: a stream may be closed by its end and again by its connection."""
        self._hub.unwatch(self.watcher)
        if self._counted:
            self._counted = False
            STREAM_CONNECTIONS.dec()
        lease = self._options.lease
        if lease is not None and not self._released:
            self._released = True
            lease.release()

    def __iter__(self) -> Iterator[Update | _Ping]:
        # `_run` itself, not a generator around it: one generator level less held by each of
        # thousands of idle streams.
        snapshot, self._snapshot = self._snapshot, None
        assert snapshot is not None, "open() the stream first"
        return self._run(snapshot)

    def _fresh(self, updates: list[Update]) -> Iterator[Update]:
        # In order (a snapshot's order is the protocol's); anything not newer than what the
        # client already has for its key is dropped. Versions order one key's messages only
        # (a subscription's, the entitlement list's), so they are never compared across keys.
        for update in updates:
            key = update.key
            if key not in self._sent or newer_version(update.version, self._sent[key]):
                self._sent[key] = update.version
                yield update

    def _throttle_usage(self, pending: list[Update], now: float) -> list[Update]:
        """`pending` without usage totals, plus the held ones when their send slot has come."""
        if not pending and not self._held_usage:
            return pending
        others = []
        for update in pending:
            if update.type != USAGE_UPDATED:
                others.append(update)
            elif is_newer(update, self._held_usage.get(update.key)):
                self._held_usage[update.key] = update
        if self._held_usage and now >= self._usage_sent_at + USAGE_MIN_INTERVAL_SECONDS:
            others.extend(self._held_usage.values())
            self._held_usage = {}
            self._usage_sent_at = now
        return others

    def _next_usage_slot(self) -> float:
        if not self._held_usage:
            return float("inf")
        return self._usage_sent_at + USAGE_MIN_INTERVAL_SECONDS

    def _forward(self, pending: list[Update]) -> Generator[Update, None, tuple[bool, bool]]:
        """Yield the fresh updates; (any sent?, a terminal status sent?)."""
        sent = False
        for update in self._fresh(pending):
            yield update
            sent = True
            if self._ends_after_terminal and update.status in TERMINAL_STATUSES:
                return sent, True
        return sent, False

    def _run(self, snapshot: list[Update]) -> Iterator[Update | _Ping]:
        try:
            options = self._options
            now = time.monotonic()
            last_frame = idle_since = now
            token_deadline = float("inf")
            if options.token_expires_at is not None:
                token_deadline = now + (options.token_expires_at - utcnow()).total_seconds()
            pending = snapshot
            del snapshot  # `pending` is reassigned below: keep no reference to the sent snapshot
            revocation_checked = lease_renewed = now
            lease = options.lease
            renew_every = lease.renew_seconds if lease is not None else float("inf")
            while True:
                now = time.monotonic()
                # Woken with something to send: is the token still good? (At most once a second;
                # the snapshot right after authentication needs no check.)
                if pending and now >= revocation_checked + REVOCATION_CHECK_SECONDS:
                    revocation_checked = now
                    if options.token_revoked():
                        self.end_reason = TOKEN_REVOKED
                        return
                pending = self._throttle_usage(pending, now)
                sent, terminal = yield from self._forward(pending)
                # Nothing sent stays referenced while the stream waits: an idle client holds no
                # copy of its snapshot.
                pending = []
                if sent:
                    last_frame = idle_since = time.monotonic()
                if terminal:
                    self.end_reason = TERMINAL
                    return
                now = time.monotonic()
                if options.client_gone():
                    self.end_reason = CLIENT_GONE
                    return
                if now >= token_deadline:
                    self.end_reason = TOKEN_EXPIRED
                    return
                if now >= idle_since + options.idle_timeout_seconds:
                    self.end_reason = IDLE
                    return
                if now >= last_frame + options.ping_seconds:
                    # An idle stream learns of a revocation at its next ping at the latest.
                    revocation_checked = now
                    if options.token_revoked():
                        self.end_reason = TOKEN_REVOKED
                        return
                    yield PING
                    last_frame = now = time.monotonic()
                if lease is not None and now >= lease_renewed + renew_every:
                    lease.renew()
                    lease_renewed = now
                wait = min(
                    lease_renewed + renew_every,
                    last_frame + options.ping_seconds,
                    idle_since + options.idle_timeout_seconds,
                    token_deadline,
                    self._next_usage_slot(),
                )
                resync, pending = self.watcher.take(max(wait - now, 0.0))
                if resync:
                    reloaded = self._load_snapshot()
                    if reloaded is None:
                        self.end_reason = NOT_FOUND
                        return
                    pending = reloaded + pending
                    del reloaded
        finally:
            self.close()


def checkout_stream(
    hub: SubscriberHub, checkout_id: uuid.UUID, customer_id: uuid.UUID, options: StreamOptions
) -> StatusStream | None:
    """An opened stream of the customer's checkout (`own_checkout_id` first), or None if it
    is gone or not theirs after all."""

    def load() -> list[Update] | None:
        update = load_checkout_snapshot(checkout_id, customer_id)
        return None if update is None else [update]

    stream = StatusStream(
        hub, checkout_channel(checkout_id), load, options, ends_after_terminal=True
    )
    return stream if stream.open() else None


def customer_stream(
    hub: SubscriberHub, customer_id: uuid.UUID, options: StreamOptions
) -> StatusStream:
    """An opened stream of the customer's subscriptions and entitlements."""
    stream = StatusStream(
        hub, customer_channel(customer_id), lambda: load_customer_snapshot(customer_id), options
    )
    stream.open()
    return stream
