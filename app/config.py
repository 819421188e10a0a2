"""Settings from the environment, with defaults that work on a developer's laptop.

Secrets fail closed: outside the test suite (`BILLINGOS_ENV=test`) a missing or published
default Stripe key or webhook secret stops start-up with one line naming it, in every mode, so
a deploy that forgot one cannot fall back to a value anyone can read in the repository (and
sign a "payment succeeded" with). `make run` generates its own. A live Stripe key is refused
outside `BILLINGOS_ENV=production`.

There is no Flask `SECRET_KEY`: nothing is signed with it (no cookies, no sessions), and a
required secret that protects nothing would only be ceremony.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

import limits

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/billingos"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The Stripe API version the gateway pins (stripe-python 16.x's own pin).
STRIPE_API_VERSION = "2026-10-28.endive"

# Card testing is the abuse to stop: a declined checkout may be retried a few times, not hundreds.
RATE_LIMIT_DEFAULTS = {
    "checkout_create_per_customer": "100/hour",
    "confirm_per_checkout": "10/hour",
    "confirm_per_customer": "30/hour",
    "session_tokens_per_organization": "3000/minute",
    "portal_per_customer": "10/minute",
    "subscribe_per_customer": "10/minute",
    # The hosted checkout page (no credential): a page polling every 2 s uses 30 a minute; an
    # address may hide a few buyers behind one NAT. Beyond that someone is probing ids.
    "embed_per_checkout": "120/minute",
    "embed_per_address": "600/minute",
}
TEST_MODE = "test"
PRODUCTION_MODE = "production"
# Values committed to this repository (defaults, test and emulator fixtures): never a secret.
PUBLISHED_WEBHOOK_SECRETS = frozenset(
    {"whsec_billingos_dev", "whsec_test_billingos", "whsec_test", "whsec_x"}
)
# Placeholder Stripe keys that only the local emulator accepts; fine when STRIPE_API_BASE points
# elsewhere than Stripe, refused against Stripe itself.
PLACEHOLDER_STRIPE_KEYS = frozenset(
    {"sk_test_billingos_emulator", "sk_test_billingos", "sk_test_billingos_bench"}
)
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
# Development defaults, used only by the test suite (and as the dataclass defaults).
_DEV_SECRETS = {
    "STRIPE_SECRET_KEY": "sk_test_billingos_emulator",
    "STRIPE_WEBHOOK_SECRET": "whsec_billingos_dev",
}


RETENTION_SETTINGS = (
    "session_token_retention_days",
    "client_secret_retention_days",
    "event_payload_retention_days",
    "event_retention_days",
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


def webhook_secrets_from(env: dict[str, str]) -> tuple[str, ...]:
    """`STRIPE_WEBHOOK_SECRETS` and `STRIPE_WEBHOOK_SECRET`, each comma-separated, in order."""
    raw = ",".join(
        env.get(name) or "" for name in ("STRIPE_WEBHOOK_SECRETS", "STRIPE_WEBHOOK_SECRET")
    )
    secrets: list[str] = []
    for secret in (part.strip() for part in raw.split(",")):
        if secret and secret not in secrets:
            secrets.append(secret)
    return tuple(secrets)


def _rate_limits(env: dict[str, str], values: dict[str, Any]) -> dict[str, str]:
    rules = {
        # The oldest limit keeps its two settings (deployments set them).
        "checkout_create_per_token": (
            f"{values['checkout_rate_limit']} per {values['checkout_rate_window_seconds']} seconds"
        ),
        **RATE_LIMIT_DEFAULTS,
    }
    for name in rules:
        variable = "RATE_LIMIT_" + name.upper()
        spec = env.get(variable) or rules[name]
        try:
            limits.parse(spec)
        except ValueError:
            raise ConfigError(
                f"BillingOS: setting {variable} must read like '10/minute', got {spec!r}"
            ) from None
        rules[name] = spec
    return rules


def _mode(env: dict[str, str]) -> str:
    """BILLINGOS_MODE: test or live (whether the Stripe key matches is `secret_problems`')."""
    mode = env.get("BILLINGOS_MODE") or "test"
    if mode not in ("test", "live"):
        raise ConfigError(f"BillingOS: BILLINGOS_MODE must be test or live, got {mode!r}")
    return mode


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = normalize_database_url(DEFAULT_DATABASE_URL)
    redis_url: str = DEFAULT_REDIS_URL
    broker_url: str = DEFAULT_REDIS_URL
    port: int = 5000
    stripe_secret_key: str = _DEV_SECRETS["STRIPE_SECRET_KEY"]
    stripe_publishable_key: str = "pk_test_billingos_emulator"
    stripe_webhook_secret: str = _DEV_SECRETS["STRIPE_WEBHOOK_SECRET"]
    # Every secret a `Stripe-Signature` may match: during a rotation (or with two endpoints)
    # Stripe signs with the new secret while the old one is still valid for a while.
    # Empty means just `stripe_webhook_secret`.
    stripe_webhook_secrets: tuple[str, ...] = ()
    stripe_api_base: str | None = None
    stripe_api_version: str = STRIPE_API_VERSION
    stripe_max_network_retries: int = 2
    stripe_connect_timeout: float = 5.0
    stripe_read_timeout: float = 20.0
    checkout_rate_limit: int = 30
    checkout_rate_window_seconds: int = 60
    # Abuse limits by rule name (app/rate_limit.py), each "N per period" as the `limits` library
    # parses it ("10/minute", "30 per 60 seconds"); RATE_LIMIT_<NAME> overrides one.
    rate_limits: dict[str, str] = field(
        default_factory=lambda: {"checkout_create_per_token": "30/minute", **RATE_LIMIT_DEFAULTS}
    )
    db_pool_size: int = 10
    # Server-side PREPARE for the entitlement diff (saves Postgres its planning per event).
    # Off behind a pooler in transaction mode (pgbouncer), which cannot keep a session's
    # prepared statements: DB_SERVER_PREPARE=0.
    db_server_prepare: bool = True
    # A statement waiting longer than this for a row lock fails (55P03) instead of hanging: a
    # task retries it, a request answers 503 with Retry-After. 0 disables the limit.
    db_lock_timeout_ms: int = 5000
    # Any single statement running longer than this is canceled (57014). 0 disables it.
    db_statement_timeout_ms: int = 30000
    # Retention (app/retention.py): days after which data nobody needs any more is removed.
    session_token_retention_days: int = 7
    client_secret_retention_days: int = 1
    event_payload_retention_days: int = 7
    event_retention_days: int = 30
    # How long a rotated API key keeps working beside its replacement.
    api_key_rotation_overlap_seconds: int = 86400
    # `/metrics` answers only `Authorization: Bearer <this>`; unset, it is not served at all.
    metrics_token: str | None = None
    realtime: RealtimeSettings = field(default_factory=lambda: RealtimeSettings())
    # test | live: the mode of the credentials this deployment mints and accepts.
    mode: str = "test"
    # Where a credential of the other mode belongs (the hosts the SDKs pick from a prefix).
    test_api_url: str = "https://sandbox-api.billingos.dev"
    live_api_url: str = "https://api.billingos.dev"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == PRODUCTION_MODE

    def secret_problems(self) -> list[str]:
        """What is wrong with the secrets, in words naming each setting; empty when safe."""
        # Live mode takes real money only, and a live key only ever serves live mode: checked
        # in the test suite too, since a mixed-up mode mints credentials for the wrong host.
        problems = []
        live_key = self.stripe_secret_key.startswith(LIVE_KEY_PREFIXES)
        if self.mode == "live" and not live_key:
            problems.append("BILLINGOS_MODE=live needs a live STRIPE_SECRET_KEY (sk_live_…)")
        if self.mode == "test" and live_key:
            problems.append("a live STRIPE_SECRET_KEY needs BILLINGOS_MODE=live")
        if self.env == TEST_MODE:
            return problems
        if not self.stripe_webhook_secret:
            problems.append("missing required setting STRIPE_WEBHOOK_SECRET")
        elif any(secret in PUBLISHED_WEBHOOK_SECRETS for secret in self.webhook_secrets):
            problems.append("STRIPE_WEBHOOK_SECRET is a published default, generate your own")
        if not self.stripe_secret_key:
            problems.append("missing required setting STRIPE_SECRET_KEY")
        elif self.stripe_secret_key.startswith(LIVE_KEY_PREFIXES) and not self.is_production:
            problems.append("STRIPE_SECRET_KEY is a live key but BILLINGOS_ENV is not production")
        elif self.stripe_secret_key in PLACEHOLDER_STRIPE_KEYS and self._talks_to_stripe():
            problems.append("STRIPE_SECRET_KEY is a placeholder that only the emulator accepts")
        if self.is_production and not self.stripe_publishable_key:
            problems.append("missing required setting STRIPE_PUBLISHABLE_KEY")
        return problems

    def _talks_to_stripe(self) -> bool:
        return self.stripe_api_base is None or "api.stripe.com" in self.stripe_api_base

    def require_safe_secrets(self) -> None:
        """Stop start-up (one line on stderr) if `secret_problems` finds anything."""
        problems = self.secret_problems()
        if problems:
            raise ConfigError("BillingOS: " + "; ".join(problems))

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        return self.stripe_webhook_secrets or (self.stripe_webhook_secret,)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if environ is None else environ)
        mode = env.get("BILLINGOS_ENV", "development")
        defaults = cls()

        def secret(name: str) -> str:
            # Only the test suite falls back to the development values; elsewhere a missing
            # secret stays empty so `require_safe_secrets` can name it.
            fallback = _DEV_SECRETS[name] if mode == TEST_MODE else ""
            return env.get(name) or fallback

        webhook_secrets = webhook_secrets_from(env) or (secret("STRIPE_WEBHOOK_SECRET"),)

        billing_mode = _mode(env)
        redis_url = env.get("REDIS_URL") or DEFAULT_REDIS_URL
        values: dict[str, Any] = {
            "env": mode,
            "database_url": normalize_database_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            "redis_url": redis_url,
            "broker_url": env.get("CELERY_BROKER_URL") or redis_url,
            "port": _int(env, "PORT", defaults.port),
            "stripe_secret_key": secret("STRIPE_SECRET_KEY"),
            # Not a secret: only production insists on a real one.
            "stripe_publishable_key": env.get("STRIPE_PUBLISHABLE_KEY")
            or ("" if mode == PRODUCTION_MODE else defaults.stripe_publishable_key),
            "stripe_webhook_secret": webhook_secrets[0],
            "stripe_webhook_secrets": webhook_secrets,
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
            "db_lock_timeout_ms": _int(env, "DB_LOCK_TIMEOUT_MS", defaults.db_lock_timeout_ms),
            "db_statement_timeout_ms": _int(
                env, "DB_STATEMENT_TIMEOUT_MS", defaults.db_statement_timeout_ms
            ),
            **{
                name: _int(env, name.upper(), getattr(defaults, name))
                for name in RETENTION_SETTINGS
            },
            "metrics_token": env.get("METRICS_TOKEN") or None,
            "api_key_rotation_overlap_seconds": _int(
                env, "API_KEY_ROTATION_OVERLAP_SECONDS", defaults.api_key_rotation_overlap_seconds
            ),
            "realtime": realtime_settings(env),
            "mode": billing_mode,
            "test_api_url": env.get("BILLINGOS_TEST_API_URL") or defaults.test_api_url,
            "live_api_url": env.get("BILLINGOS_LIVE_API_URL") or defaults.live_api_url,
        }
        values["rate_limits"] = _rate_limits(env, values)
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
