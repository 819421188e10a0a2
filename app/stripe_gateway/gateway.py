"""The gateway class (all groups of calls) and the one instance per process."""

from __future__ import annotations

import threading
from typing import Any

from app.config import Settings
from app.stripe_gateway.billing import BillingCalls
from app.stripe_gateway.customers import CustomerCalls
from app.stripe_gateway.events import EventCalls
from app.stripe_gateway.payments import PaymentCalls

_gateway: StripeGateway | None = None
_gateway_key: tuple[Any, ...] | None = None
_gateway_lock = threading.Lock()


def _settings_key(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.stripe_secret_key,
        settings.stripe_api_base,
        settings.stripe_api_version,
        settings.stripe_max_network_retries,
        settings.stripe_connect_timeout,
        settings.stripe_read_timeout,
    )


def get_gateway(settings: Settings | None = None) -> StripeGateway:
    """The process's gateway (its HTTP connection pool is reused across requests and tasks).

    Without `settings`, the current Flask app's settings are used (tasks run in an app context).
    """
    global _gateway, _gateway_key
    if settings is None:
        from flask import current_app

        settings = current_app.config["BILLINGOS"]
    assert settings is not None
    key = _settings_key(settings)
    gateway = _gateway
    if gateway is not None and _gateway_key == key:
        return gateway
    with _gateway_lock:
        if _gateway is None or _gateway_key != key:
            _gateway = StripeGateway(settings)
            _gateway_key = key
        return _gateway


class StripeGateway(CustomerCalls, PaymentCalls, BillingCalls, EventCalls):
    """Every Stripe call BillingOS makes, one method per operation, grouped by domain."""
