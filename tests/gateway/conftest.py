"""Gateway contract tests: a gateway without library retries, a Stripe customer, a catalog."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from flask import Flask

from app.config import Settings
from app.stripe_gateway import StripeGateway
from tests.support.billing import catalog  # noqa: F401 (fixture)


@pytest.fixture()
def settings(app: Flask, stripe_emulator: Any) -> Settings:
    configured: Settings = app.config["BILLINGOS"]
    # No library retries here, so each fault is seen as it happens.
    return dataclasses.replace(configured, stripe_max_network_retries=0)


@pytest.fixture()
def gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(settings)


def new_customer(gateway: StripeGateway, organization_id: uuid.UUID) -> str:
    """A Stripe customer of a fresh customer of ours."""
    return gateway.ensure_customer(
        customer_id=uuid.uuid4(),
        organization_id=organization_id,
        external_id="user_1",
        email="buyer@example.com",
        name=None,
    )
