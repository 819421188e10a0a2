"""Minting session tokens is limited per organization (429 problem with `Retry-After`)."""

from __future__ import annotations

import pytest
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from app.config import ConfigError, Settings
from tests.factories import make_merchant
from tests.support.limits import configured_limits


def _mint(client, merchant, user: str):  # type: ignore[no-untyped-def]
    body = {"customer": {"external_id": user}}
    return client.post("/v1/session-tokens", json=body, headers=merchant.headers)


def test_minting_is_limited_per_organization(app, client, merchant) -> None:
    with configured_limits(app, session_tokens_per_organization="2/minute"):
        assert _mint(client, merchant, "u1").status_code == 201
        assert _mint(client, merchant, "u2").status_code == 201
        limited = _mint(client, merchant, "u3")
        assert limited.status_code == 429
        assert limited.mimetype == "application/problem+json"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert _mint(client, make_merchant("Other"), "u3").status_code == 201


def test_a_malformed_limit_stops_start_up() -> None:
    env = {"BILLINGOS_ENV": "test", "RATE_LIMIT_CONFIRM_PER_CHECKOUT": "lots"}
    with pytest.raises(ConfigError, match="RATE_LIMIT_CONFIRM_PER_CHECKOUT"):
        Settings.from_env(env)
    tightened = Settings.from_env({**env, "RATE_LIMIT_CONFIRM_PER_CHECKOUT": "5/hour"})
    assert tightened.rate_limits["confirm_per_checkout"] == "5/hour"


def test_an_unreachable_redis_lets_requests_through(app, client, merchant) -> None:
    # The limits guard against abuse; refusing every request while Redis flaps would hurt more.
    unreachable = RedisStorage(
        "redis://127.0.0.1:1/0", wrap_exceptions=True, socket_connect_timeout=0.2
    )
    original = app.extensions["rate_limiter"]
    app.extensions["rate_limiter"] = SlidingWindowCounterRateLimiter(unreachable)
    try:
        with configured_limits(app, session_tokens_per_organization="1/minute"):
            statuses = [_mint(client, merchant, f"u{n}").status_code for n in range(3)]
    finally:
        app.extensions["rate_limiter"] = original
    assert statuses == [201, 201, 201]
