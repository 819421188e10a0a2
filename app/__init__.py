"""The BillingOS Flask application factory."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from app.config import Settings

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    from app.celery_app import init_celery
    from app.cors import init_cors
    from app.db import db
    from app.demo.routes import register_demo
    from app.errors import register_error_handlers, register_request_guards
    from app.logging_setup import configure_logging, connect_celery_signals, init_request_logging
    from app.metrics import connect_task_metrics, init_metrics, watch_checkout_settlements
    from app.rate_limit import init_rate_limits
    from app.realtime import init_realtime
    from app.redis_client import init_redis
    from app.security_headers import register_security_headers
    from app.versions import init_versions

    settings = settings or Settings.from_env(**overrides)
    settings.require_safe_secrets()
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    connect_celery_signals()
    connect_task_metrics()
    watch_checkout_settlements()

    app = Flask("billingos", static_folder=None)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        BILLINGOS=settings,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False

    db.configure(
        settings.database_url,
        pool_size=settings.db_pool_size,
        lock_timeout_ms=settings.db_lock_timeout_ms,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        server_prepare=settings.db_server_prepare,
    )
    init_redis(app, settings.redis_url)
    init_rate_limits(app, settings)
    init_realtime(app, settings.redis_url)
    init_celery(app, settings)
    # First, so even a request the guards refuse carries (and returns) a request id.
    init_request_logging(app)
    register_error_handlers(app)
    register_request_guards(app)
    init_cors(app)
    init_metrics(app)
    register_security_headers(app)
    _register_blueprints(app)
    register_demo(app)
    init_versions(app)
    # Well-signed Stripe deliveries are answered below Flask (the same service, metrics,
    # request id and headers; everything else reaches the route).
    from app.webhooks.ingest import install_ingest

    install_ingest(app, MAX_BODY_BYTES)

    from app.cli import billingos_cli

    app.cli.add_command(billingos_cli)

    @app.teardown_appcontext
    def _remove_session(_exc: BaseException | None) -> None:
        db.session.remove()

    return app


def _register_blueprints(app: Flask) -> None:
    from app.api_keys.routes import bp as api_keys
    from app.catalog.routes import bp as catalog
    from app.checkout.routes import bp as checkout
    from app.customers.routes import bp as customers
    from app.embed.routes import bp as embed
    from app.entitlements.routes import bp as features
    from app.ops.routes import bp as ops
    from app.organizations.routes import bp as organizations
    from app.session_tokens.routes import bp as session_tokens
    from app.streams.routes import bp as streams
    from app.webhooks.routes import bp as webhooks

    for bp in (
        ops,
        organizations,
        session_tokens,
        api_keys,
        catalog,
        checkout,
        streams,
        customers,
        features,
        webhooks,
        embed,
    ):
        app.register_blueprint(bp)


def settings_of(app: Flask) -> Settings:
    settings: Settings = app.config["BILLINGOS"]
    return settings
