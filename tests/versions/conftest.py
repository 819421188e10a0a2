"""The exact headers and bodies `@billingos/sdk` and `@billingos/node` send."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.versions import SDK_2026_01_01
from tests.checkout.conftest import worker  # noqa: F401 (fixture)
from tests.factories import Merchant, make_merchant
from tests.support.billing import Catalog, catalog  # noqa: F401 (fixture)

__all__ = ["ORIGIN", "Catalog", "mint", "node_headers", "react_headers"]

# The merchant's web app, where the React SDK runs (the Vite dev server's default).
ORIGIN = "http://localhost:5173"


@pytest.fixture()
def merchant(app_context: None) -> Merchant:
    """A merchant as created from now on: the SDK dialect by default, its web app allowed."""
    return make_merchant(api_version=SDK_2026_01_01, allowed_origins=(ORIGIN,))


def node_headers(merchant: Merchant) -> dict[str, str]:
    # APIClient: its configured Authorization plus Content-Type, and no version header.
    return {"Authorization": f"Bearer {merchant.secret_key}", "Content-Type": "application/json"}


def react_headers(session_token: str, origin: str = ORIGIN) -> dict[str, str]:
    # BillingOSClient's default headers, sent by a browser on the merchant's origin.
    return {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {session_token}",
        "X-BillingOS-Version": SDK_2026_01_01,
        "Origin": origin,
    }


def mint(client: FlaskClient, merchant: Merchant, external_user_id: str = "user_42") -> Any:
    """`billing.createSessionToken({externalUserId, expiresIn})` of the node SDK."""
    response = client.post(
        "/v1/session-tokens",
        json={"externalUserId": external_user_id, "expiresIn": 3600},
        headers=node_headers(merchant),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture()
def session_token(client: FlaskClient, merchant: Merchant) -> str:
    token: str = mint(client, merchant)["sessionToken"]
    return token
