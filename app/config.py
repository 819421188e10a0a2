"""Settings from the environment, with defaults that work on a developer's laptop.

In production (`BILLINGOS_ENV=production`) every secret must be set: a missing one stops
start-up with one line naming it, instead of failing on the first payment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/billingos"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The Stripe API version the gateway pins (stripe-python 16.x's own pin).
STRIPE_API_VERSION = "2026-10-28.endive"

REQUIRED_IN_PRODUCTION = (
    "SECRET_KEY",
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
)


class ConfigError(SystemExit):
    """Raised at start-up; SystemExit so the process prints one line and stops."""


def normalize_database_url(url: str) -> str:
    # Heroku hands out postgres://, which SQLAlchemy 2 no longer accepts as a dialect name.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"BillingOS: setting {name} must be a number, got {raw!r}") from None


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"BillingOS: setting {name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = normalize_database_url(DEFAULT_DATABASE_URL)
    redis_url: str = DEFAULT_REDIS_URL
    broker_url: str = DEFAULT_REDIS_URL
    port: int = 5000
    secret_key: str = "dev-only-not-secret"
    stripe_secret_key: str = "sk_test_billingos_emulator"
    stripe_publishable_key: str = "pk_test_billingos_emulator"
    stripe_webhook_secret: str = "whsec_billingos_dev"
    stripe_api_base: str | None = None
    stripe_api_version: str = STRIPE_API_VERSION
    stripe_max_network_retries: int = 2
    stripe_connect_timeout: float = 5.0
    stripe_read_timeout: float = 20.0
    checkout_rate_limit: int = 30
    checkout_rate_window_seconds: int = 60
    db_pool_size: int = 10
    # Server-side PREPARE for the entitlement diff (saves Postgres its planning per event).
    # Off behind a pooler in transaction mode (pgbouncer), which cannot keep a session's
    # prepared statements: DB_SERVER_PREPARE=0.
    db_server_prepare: bool = True
    realtime: RealtimeSettings = field(default_factory=lambda: RealtimeSettings())
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if environ is None else environ)
        mode = env.get("BILLINGOS_ENV", "development")
        if mode == "production":
            for name in REQUIRED_IN_PRODUCTION:
                if not env.get(name):
                    raise ConfigError(f"BillingOS: missing required setting {name}")
        defaults = cls()
        redis_url = env.get("REDIS_URL") or DEFAULT_REDIS_URL
        values: dict[str, Any] = {
            "env": mode,
            "database_url": normalize_database_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            "redis_url": redis_url,
            "broker_url": env.get("CELERY_BROKER_URL") or redis_url,
            "port": _int(env, "PORT", defaults.port),
            "secret_key": env.get("SECRET_KEY") or defaults.secret_key,
            "stripe_secret_key": env.get("STRIPE_SECRET_KEY") or defaults.stripe_secret_key,
            "stripe_publishable_key": env.get("STRIPE_PUBLISHABLE_KEY")
            or defaults.stripe_publishable_key,
            "stripe_webhook_secret": env.get("STRIPE_WEBHOOK_SECRET")
            or defaults.stripe_webhook_secret,
            "stripe_api_base": env.get("STRIPE_API_BASE") or None,
            "stripe_max_network_retries": _int(
                env, "STRIPE_MAX_NETWORK_RETRIES", defaults.stripe_max_network_retries
            ),
            "stripe_connect_timeout": _float(
                env, "STRIPE_CONNECT_TIMEOUT", defaults.stripe_connect_timeout
            ),
            "stripe_read_timeout": _float(env, "STRIPE_READ_TIMEOUT", defaults.stripe_read_timeout),
            "checkout_rate_limit": _int(env, "CHECKOUT_RATE_LIMIT", defaults.checkout_rate_limit),
            "checkout_rate_window_seconds": _int(
                env, "CHECKOUT_RATE_WINDOW_SECONDS", defaults.checkout_rate_window_seconds
            ),
            "db_pool_size": _int(env, "DB_POOL_SIZE", defaults.db_pool_size),
            "db_server_prepare": env.get("DB_SERVER_PREPARE", "1") != "0",
            "realtime": realtime_settings(env),
        }
        known = {f.name for f in fields(cls)}
        for key, value in overrides.items():
            if key not in known:
                raise TypeError(f"unknown setting {key}")
            values[key] = value
        return cls(**values)


# --------------------------------------------------------------------------- real time


@dataclass(frozen=True)
class RealtimeSettings:
    """Websocket/SSE streams and their Redis subscriber; each from `REALTIME_<NAME>`."""

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
    # Open websocket/SSE streams at once, counted across every web process (Redis leases).
    max_streams_per_token: int = 10
    max_streams_per_customer: int = 30
    # A stream's lease outlives a crashed process by at most this; renewed at a third of it.
    stream_lease_seconds: float = 60.0


def realtime_settings(env: dict[str, str]) -> RealtimeSettings:
    defaults = RealtimeSettings()
    values: dict[str, Any] = {}
    for f in fields(RealtimeSettings):
        name, default = f"REALTIME_{f.name.upper()}", getattr(defaults, f.name)
        values[f.name] = (_int if isinstance(default, int) else _float)(env, name, default)
    return RealtimeSettings(**values)
