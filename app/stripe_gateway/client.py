"""One `stripe.StripeClient` per gateway and `_call`, through which every Stripe request passes
(errors translated, metrics recorded)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

import stripe

from app.config import Settings
from app.metrics import observe_stripe_call
from app.stripe_gateway.errors import translate_error

T = TypeVar("T")


class GatewayClient:
    """The `stripe.StripeClient` and `_call`, which every group of gateway methods builds on."""

    def __init__(self, settings: Settings) -> None:
        base_addresses: dict[str, str] = {}
        if settings.stripe_api_base:
            base_addresses["api"] = settings.stripe_api_base.rstrip("/")
        self.client = stripe.StripeClient(
            settings.stripe_secret_key,
            stripe_version=settings.stripe_api_version,
            base_addresses=base_addresses,  # type: ignore[arg-type]
            # https://docs.stripe.com/error-low-level#idempotency: the library retries
            # connection errors and 409/5xx with the same idempotency key.
            max_network_retries=settings.stripe_max_network_retries,
            http_client=stripe.RequestsClient(
                timeout=(settings.stripe_connect_timeout, settings.stripe_read_timeout)
            ),
        )

    @staticmethod
    def _call(fn: Callable[[], T]) -> T:
        # Every method calls Stripe through here, so its name labels the call's metrics.
        operation = sys._getframe(1).f_code.co_name
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return fn()
        except stripe.StripeError as stripe_error:
            error = translate_error(stripe_error)
            raise error from None
        except BaseException as other:
            error = other
            raise
        finally:
            observe_stripe_call(operation, time.perf_counter() - started, error)
