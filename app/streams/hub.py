"""The per-process subscriber hub: one Redis pub/sub connection fanning out to local clients.

One Redis connection per web process, read by one greenlet (a thread outside gevent). Channels
are subscribed on demand, when the first local client watches one, and unsubscribed a grace
period after the last one leaves. Every local client is a `Watcher`: a mailbox of the newest
unsent update per key, filled by the hub in O(1) without blocking, so a slow or dead client
never delays the others (it simply skips intermediate versions). On a lost connection the hub
reconnects with exponential backoff and jitter, resubscribes, and asks every watcher to reload
its snapshot from Postgres. `app/streams/service.py` turns a watcher into the websocket/SSE
streams; the messages themselves are published by `app/realtime.py`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.config import RealtimeSettings
from app.realtime import CHECKOUT_UPDATED, SUBSCRIPTION_UPDATED, USAGE_UPDATED

log = logging.getLogger(__name__)

_EXTENSION = "billingos.streams.hub"


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
    elif message_type == USAGE_UPDATED:
        # One key per feature and period: a new period's first total is not "older" than the
        # last total of the one before.
        key = f"usage:{data['feature_key']}:{data['period_start']}"
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


def hub_of(app: Flask) -> SubscriberHub:
    """The process's hub, created on first use: only processes that serve streams open it."""
    hub: SubscriberHub | None = app.extensions.get(_EXTENSION)
    if hub is None:
        from app import settings_of

        settings = settings_of(app)
        hub = app.extensions[_EXTENSION] = SubscriberHub(settings.redis_url, settings.realtime)
    return hub
