"""Abuse limits: one mechanism, the `limits` library's sliding-window counter kept in Redis.

Every web process shares one count per rule and subject. Rules are named and configured in
Settings.rate_limits ("10/minute"; RATE_LIMIT_<NAME> overrides one), so an operator can tighten
or lift any of them without a deploy of code. A sliding-window counter weighs the previous
window's count, so a client cannot send twice the limit across a window boundary as it could
with a fixed window.
"""

from __future__ import annotations

import logging
import math
import time

import limits
from flask import Flask, current_app
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from app.config import Settings
from app.errors import RateLimited

log = logging.getLogger(__name__)

# Rule names (Settings.rate_limits keys), each counted per the subject its name says.
CHECKOUT_CREATE_PER_TOKEN = "checkout_create_per_token"
CHECKOUT_CREATE_PER_CUSTOMER = "checkout_create_per_customer"
CONFIRM_PER_CHECKOUT = "confirm_per_checkout"
CONFIRM_PER_CUSTOMER = "confirm_per_customer"
SESSION_TOKENS_PER_ORGANIZATION = "session_tokens_per_organization"
PORTAL_PER_CUSTOMER = "portal_per_customer"
SUBSCRIBE_PER_CUSTOMER = "subscribe_per_customer"
EMBED_PER_CHECKOUT = "embed_per_checkout"
EMBED_PER_ADDRESS = "embed_per_address"

_EXTENSION = "rate_limiter"


def init_rate_limits(app: Flask, settings: Settings) -> None:
    # The app's own Redis pool: no second set of connections per process.
    storage = RedisStorage(
        settings.redis_url,
        connection_pool=app.extensions["redis"].connection_pool,
        key_prefix="bos:ratelimit",
        wrap_exceptions=True,
    )
    app.extensions[_EXTENSION] = SlidingWindowCounterRateLimiter(storage)


def rule(name: str) -> limits.RateLimitItem:
    """The configured limit `name` (its `amount` per `get_expiry()` seconds)."""
    settings: Settings = current_app.config["BILLINGOS"]
    return limits.parse(settings.rate_limits[name])


def enforce(name: str, subject: str) -> None:
    """Count one request of `subject` against rule `name`; 429 with `Retry-After` past it.

    If Redis cannot be asked, the request is let through: the limits guard against abuse, and
    refusing every checkout while Redis flaps would hurt more than it protects.
    """
    limiter: SlidingWindowCounterRateLimiter = current_app.extensions[_EXTENSION]
    item = rule(name)
    try:
        if limiter.hit(item, name, subject):
            return
        reset_at = limiter.get_window_stats(item, name, subject).reset_time
    except StorageError as error:
        log.warning("rate limit %s not checked: %s", name, type(error.storage_error).__name__)
        return
    retry_after = max(1, min(item.get_expiry(), math.ceil(reset_at - time.time())))
    raise RateLimited(
        f"Too many requests; retry in {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
    )
