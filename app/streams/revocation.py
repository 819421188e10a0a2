"""Whether a stream's session token was revoked, asked by thousands of streams at once."""

from __future__ import annotations

import threading
import time

import redis
from flask import current_app

from app.auth import revoked_token_hashes
from app.redis_client import get_redis


class _RevocationBatch:
    __slots__ = ("done", "hashes", "revoked")

    def __init__(self) -> None:
        self.hashes: set[str] = set()
        self.revoked: set[str] = set()
        self.done = threading.Event()


class RevocationChecker:
    """The process's streams' revocation checks, coalesced into one Redis MGET per batch.

    Reads the tombstones `app.auth` writes, many tokens at a time.

    A broadcast wakes every stream of a channel at once, and each asks whether its token was
    revoked: one GET each would be thousands of round trips (and pooled connections) per
    broadcast. The first stream to ask opens a batch, yields once so the streams woken with it
    join, then reads every token in the batch with one MGET. The read is sent after every
    member asked, so each gets an answer at least as fresh as its own GET would have been.
    Redis unreachable → not known to be revoked.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._open: _RevocationBatch | None = None

    def revoked(self, token_hash: str) -> bool:
        with self._lock:
            batch = self._open
            leader = batch is None
            if batch is None:
                batch = self._open = _RevocationBatch()
            batch.hashes.add(token_hash)
        if leader:
            try:
                time.sleep(0)  # under gevent: let the greenlets woken with this one join
                with self._lock:
                    self._open = None
                hashes = list(batch.hashes)
                batch.revoked = revoked_token_hashes(self._client, hashes)
            except redis.RedisError:
                pass
            finally:
                with self._lock:
                    if self._open is batch:  # the leader was interrupted before closing it
                        self._open = None
                batch.done.set()
        else:
            batch.done.wait()
        return token_hash in batch.revoked


_REVOCATIONS = "billingos.streams.revocations"


def revocation_checker() -> RevocationChecker:
    checker: RevocationChecker | None = current_app.extensions.get(_REVOCATIONS)
    if checker is None:
        checker = current_app.extensions[_REVOCATIONS] = RevocationChecker(get_redis())
    return checker
