"""Caps on concurrent streams per session token and per customer, across every web process.

Each open stream holds a lease: a member of two Redis sorted sets (its token's and its
customer's) scored with the lease's expiry. Admission drops expired members, compares the
counts with the caps and adds the lease, in one script so two processes cannot both take the
last slot. A stream renews its lease while it lives and removes it when it ends; a process that
dies without removing its leases loses them when they expire, so a crash frees its slots after
at most `stream_lease_seconds`. Times are Redis's own clock, the one clock every process shares.

Redis unreachable → the stream is admitted without a lease (logged): a Redis outage already
degrades streams to their Postgres snapshot, and refusing every client then would turn it into
an outage of its own.
"""

from __future__ import annotations

import logging
import uuid

import redis

from app.config import RealtimeSettings
from app.errors import RateLimited
from app.redis_client import get_redis

log = logging.getLogger(__name__)

# A slot frees as soon as one of the client's other streams ends; this is a polite pause.
RETRY_AFTER_SECONDS = 10

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local caps = {tonumber(ARGV[3]), tonumber(ARGV[4])}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= caps[i] then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2])
end
return 0
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', key, ARGV[2])
end
return 0
"""


def token_key(token_hash: str) -> str:
    return f"billingos:streams:token:{token_hash}"


def customer_key(customer_id: uuid.UUID | str) -> str:
    return f"billingos:streams:customer:{customer_id}"


class Lease:
    """One open stream's slot; `renew()` while it lives, `release()` when it ends."""

    __slots__ = ("_client", "_id", "_keys", "_ttl_ms", "renew_seconds")

    def __init__(self, client: redis.Redis, keys: list[str], ttl_seconds: float) -> None:
        self._client = client
        self._keys = keys
        self._id = uuid.uuid4().hex
        self._ttl_ms = max(int(ttl_seconds * 1000), 1)
        self.renew_seconds = ttl_seconds / 3

    def _acquire(self, token_cap: int, customer_cap: int) -> int:
        """0 when taken; else 1 (the token's cap is reached) or 2 (the customer's)."""
        over = self._client.eval(
            _ACQUIRE, len(self._keys), *self._keys, self._id, self._ttl_ms, token_cap, customer_cap
        )
        return int(over)

    def renew(self) -> None:
        try:
            self._client.eval(_RENEW, len(self._keys), *self._keys, self._id, self._ttl_ms)
        except redis.RedisError as exc:
            log.warning("streams: could not renew a stream lease: %s", type(exc).__name__)

    def release(self) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            for key in self._keys:
                pipe.zrem(key, self._id)
            pipe.execute()
        except redis.RedisError as exc:
            # It expires on its own within the lease time.
            log.warning("streams: could not release a stream lease: %s", type(exc).__name__)


class TooManyStreams(RateLimited):
    """Over a cap: a 429 on SSE, close code 4429 on a websocket."""

    code = "too_many_streams"

    def __init__(self, whose: str, cap: int) -> None:
        super().__init__(
            f"This {whose} already has {cap} open stream(s); close one first.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def acquire_lease(
    settings: RealtimeSettings, token_hash: str, customer_id: uuid.UUID
) -> Lease | None:
    """A lease for one more stream of this token and customer; TooManyStreams if either is full.

    None when Redis cannot be asked (the stream goes ahead unlimited, see the module doc)."""
    client = get_redis()
    lease = Lease(
        client, [token_key(token_hash), customer_key(customer_id)], settings.stream_lease_seconds
    )
    try:
        over = lease._acquire(settings.max_streams_per_token, settings.max_streams_per_customer)
    except redis.RedisError as exc:
        log.warning("streams: stream caps not enforced, Redis unavailable: %s", type(exc).__name__)
        return None
    if over == 1:
        raise TooManyStreams("session token", settings.max_streams_per_token)
    if over == 2:
        raise TooManyStreams("customer", settings.max_streams_per_customer)
    return lease
