"""Where the Stripe contract tests send their requests: the emulator, or Stripe test mode.

`make test-stripe` sets BILLINGOS_STRIPE_CONTRACT=1 and runs `tests/gateway` and the
emulator's Stripe-rule cases (`tests/emulator/test_stripe_rules.py`). With a Stripe test key in
STRIPE_SECRET_KEY (`sk_test_…`) and no STRIPE_API_BASE, they run against Stripe itself, with
the same assertions; otherwise (and always in `make test`) against the emulator. Against Stripe,
the emulator's control API does not exist: a test that needs it (`emulator_only`, or a call to
`RealStripe.<control method>`) is skipped there with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NoReturn

import pytest
import stripe


def real_stripe_key(environ: Mapping[str, str] = os.environ) -> str | None:
    """The Stripe test key to run the contract suite against, or None for the emulator."""
    key = environ.get("STRIPE_SECRET_KEY") or ""
    if (
        environ.get("BILLINGOS_STRIPE_CONTRACT") == "1"
        and key.startswith("sk_test_")
        and not environ.get("STRIPE_API_BASE")
    ):
        return key
    return None


class RealStripe:
    """Stands where `EmulatorProcess` stands, for Stripe test mode."""

    url = None

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def start(self) -> RealStripe:
        return self

    def stop(self) -> None:
        pass

    def client(self, max_network_retries: int | None = None, **kwargs: Any) -> stripe.StripeClient:
        return stripe.StripeClient(self.api_key, max_network_retries=max_network_retries, **kwargs)

    def reset(self) -> None:
        """Stripe test data is not erased between tests: each test makes its own objects."""

    def webhook_settings(self, **settings: Any) -> dict[str, Any]:
        return {}

    def clear_faults(self) -> None:
        pass

    def __getattr__(self, name: str) -> NoReturn:
        # requests(), events(), set_faults(), advance_clock(), register_webhook(), …
        pytest.skip(f"needs the Stripe emulator's control API ({name}); running against Stripe")
