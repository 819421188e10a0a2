"""Factories that build real rows through the same services the API uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.catalog import service as catalog
from app.catalog.schemas import ProductCreate
from app.customers.schemas import CustomerIn
from app.db import db
from app.organizations.service import create_organization
from app.session_tokens import service as session_tokens
from app.versions import V2026_11_27
from models import Organization, Product


@dataclass
class Merchant:
    organization: Organization
    secret_key: str

    @property
    def id(self) -> Any:
        return self.organization.id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret_key}"}


@dataclass
class Buyer:
    token: str
    customer_id: Any
    organization_id: Any
    external_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_merchant(
    name: str = "Acme",
    api_version: str = V2026_11_27,
    allowed_origins: tuple[str, ...] = (),
) -> Merchant:
    """A merchant; pinned to 2026-11-27, the version the suite's contract tests were written for."""
    organization, secret_key = create_organization(name, api_version, allowed_origins)
    db.session.commit()
    return Merchant(organization, secret_key)


def make_buyer(
    merchant: Merchant,
    external_id: str = "user_1",
    email: str | None = "buyer@example.com",
    expires_in: int = 3600,
) -> Buyer:
    token, _row, customer = session_tokens.create_session_token(
        merchant.id, CustomerIn(external_id=external_id, email=email), expires_in
    )
    db.session.commit()
    return Buyer(token, customer.id, merchant.id, external_id)


def make_product(
    merchant: Merchant,
    *,
    name: str = "Pro",
    prices: list[dict[str, Any]] | None = None,
    features: list[dict[str, Any]] | None = None,
) -> Product:
    data = ProductCreate.model_validate(
        {
            "name": name,
            "features": features if features is not None else [{"key": "pro", "name": "Pro"}],
            "prices": prices or [{"amount": 1200, "currency": "usd", "interval": "month"}],
        }
    )
    product = catalog.create_product(merchant.id, data)
    db.session.commit()
    return product
