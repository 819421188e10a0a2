"""Fixtures for the Stripe emulator's own suite (self-sufficient: no reliance on tests/conftest).

``emulator`` (session): one ``python -m stripe_emulator`` subprocess with short webhook retry
delays. ``emu`` (function): the same emulator, reset before the test. ``client``: a
``stripe.StripeClient`` pointed at it. ``receiver``: a local webhook receiver registered with
the emulator.
"""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.support.emulator import EmulatorProcess, WebhookReceiver  # noqa: E402

WEBHOOK_SECRET = "whsec_test_emulator_suite"


@pytest.fixture(scope="session")
def emulator():
    from tests.conftest import REAL_STRIPE_KEY
    from tests.support.stripe_target import RealStripe

    if REAL_STRIPE_KEY:  # `make test-stripe` with a Stripe test key
        yield RealStripe(REAL_STRIPE_KEY)
        return
    emu = EmulatorProcess(
        extra_args=["--webhook-retry-delays", "0.05,0.1,0.2", "--webhook-timeout", "1"]
    )
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(emulator):
    emulator.reset()
    emulator.webhook_settings(retry_delays=[0.05, 0.1, 0.2], timeout_seconds=1)
    yield emulator
    emulator.clear_faults()


@pytest.fixture
def client(emu):
    return emu.client()


@pytest.fixture
def receiver(emu):
    rcv = WebhookReceiver()
    emu.register_webhook(rcv.url, WEBHOOK_SECRET)
    yield rcv
    rcv.close()


@pytest.fixture
def plan(client):
    """(customer, monthly price) for subscription scenarios."""
    cus = client.v1.customers.create(params={"email": "sub@example.com"})
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 2000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Pro"},
        }
    )
    return cus, price
