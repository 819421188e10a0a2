"""Fixed-window rate limits kept in Redis, so every web process shares one count.

One round trip per check (INCR + EXPIRE in a pipeline). A fixed window lets a client send up to
twice the limit across a window boundary; for a guard against runaway SDK loops that is fine,
and it costs one key per client per window.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from app.errors import RateLimited

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimit:
    name: str
    limit: int
    window_seconds: int


@dataclass(frozen=True)
class RateLimitState:
    allowed: bool
    count: int
    retry_after: int


def hit(
    client: redis.Redis, rule: RateLimit, subject: str, now: float | None = None
) -> RateLimitState:
    """Count one request of `subject` against `rule`."""
    now = time.time() if now is None else now
    window = int(now // rule.window_seconds)
    key = f"ratelimit:{rule.name}:{subject}:{window}"
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    # The key outlives its window a little so a clock step between processes cannot reset it.
    pipe.expire(key, rule.window_seconds + 1)
    count = int(pipe.execute()[0])
    window_end = (window + 1) * rule.window_seconds
    retry_after = max(1, int(window_end - now + 0.999))
    return RateLimitState(allowed=count <= rule.limit, count=count, retry_after=retry_after)


def enforce(client: redis.Redis, rule: RateLimit, subject: str) -> None:
    """Raise 429 (with `Retry-After`) once `subject` has used up `rule` in this window.

    If Redis cannot be asked, the request is let through: the limit guards against runaway
    clients, and refusing every checkout while Redis flaps would hurt more than it protects.
    """
    try:
        state = hit(client, rule, subject)
    except redis.RedisError as error:
        log.warning("rate limit %s not checked: %s", rule.name, type(error).__name__)
        return
    if not state.allowed:
        raise RateLimited(
            f"Too many requests; retry in {state.retry_after} s.",
            headers={"Retry-After": str(state.retry_after)},
        )
