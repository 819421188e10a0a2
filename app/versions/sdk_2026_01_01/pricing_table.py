"""The pricing table the SDK's `getProducts` reads, for a customer or an organization."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from flask import Response
from pydantic import BaseModel, Field, RootModel

from app.api import json_response, parse_query
from app.auth import current_customer
from app.catalog import service as catalog
from app.catalog.schemas import ProductList
from app.db import db
from app.pagination import MAX_PAGE_SIZE, ListQuery
from app.request_models import QueryModel
from app.subscriptions import service as subscriptions
from app.versions import SDK_2026_01_01, RouteTranslator, register
from models import Product, Subscription


class SdkProductsQuery(QueryModel):
    planIds: str | None = Field(default=None, max_length=4000, description="Product ids, a,b,c")


class PricingPrice(BaseModel):
    id: str
    amount: int
    currency: str
    interval: Literal["day", "week", "month", "year"] | None
    intervalCount: int


class PricingFeatureProperties(BaseModel):
    limit: int | None = None
    period: Literal["month", "year"] | None = None
    unit: str | None = None


class PricingFeature(BaseModel):
    id: str
    name: str = Field(description="The feature key.")
    title: str
    type: Literal["boolean_flag", "usage_quota", "numeric_limit"]
    properties: PricingFeatureProperties


class PricingProduct(BaseModel):
    id: str
    name: str
    description: str
    prices: list[PricingPrice]
    features: list[PricingFeature]
    isCurrentPlan: bool
    trialDays: int
    highlighted: bool


class PricingCurrentSubscription(BaseModel):
    id: str
    productId: str
    priceId: str
    status: str
    currentPeriodEnd: datetime | None
    cancelAtPeriodEnd: bool
    interval: Literal["day", "week", "month", "year"] | None
    amount: int | None


class PricingTable(BaseModel):
    products: list[PricingProduct]
    currentSubscription: PricingCurrentSubscription | None


class ProductsAnswer(RootModel[PricingTable | ProductList]):
    """`GET /v1/products`: the pricing table for a session token, the catalog for a secret key."""


def _pricing_product(product: Product, current_product_ids: set[uuid.UUID]) -> PricingProduct:
    prices = [p for p in product.prices if p.active]
    return PricingProduct(
        id=str(product.id),
        name=product.name,
        description=product.description or "",
        prices=[
            PricingPrice(
                id=str(p.id),
                amount=p.amount,
                currency=p.currency,
                interval=p.interval,
                intervalCount=1,
            )
            for p in prices
        ],
        features=[
            PricingFeature(
                id=str(f.id),
                name=f.key,
                title=f.name,
                type=f.type,
                properties=PricingFeatureProperties(
                    limit=product.limit_of(f.id), period=f.period, unit=f.unit
                ),
            )
            for f in product.features
        ],
        isCurrentPlan=product.id in current_product_ids,
        trialDays=max((p.trial_period_days or 0 for p in prices), default=0),
        highlighted=False,
    )


def _current_subscription(
    subscription: Subscription | None, products: dict[uuid.UUID, Product]
) -> PricingCurrentSubscription | None:
    if subscription is None:
        return None
    product = products.get(subscription.product_id)
    price = next(
        (p for p in (product.prices if product else []) if p.id == subscription.price_id), None
    )
    return PricingCurrentSubscription(
        id=str(subscription.id),
        productId=str(subscription.product_id),
        priceId=str(subscription.price_id),
        status=subscription.status,
        currentPeriodEnd=subscription.current_period_end,
        cancelAtPeriodEnd=subscription.cancel_at_period_end,
        interval=price.interval if price else None,
        amount=price.amount if price else None,
    )


def _plan_ids(raw: str | None) -> set[str] | None:
    if raw is None or not raw.strip():
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _serve_pricing_table(_handler: Callable[..., Any]) -> Response:
    query = parse_query(SdkProductsQuery)
    assert isinstance(query, SdkProductsQuery)
    principal = current_customer()
    # The SDK reads one list and never pages: the table holds the first page of the largest size
    # (a pricing table of more than 100 plans is not one a buyer can read).
    every_product, _ = catalog.list_active_products(
        principal.organization_id, ListQuery(limit=MAX_PAGE_SIZE)
    )
    products = every_product
    wanted = _plan_ids(query.planIds)
    if wanted is not None:
        products = [p for p in products if str(p.id) in wanted]
    live = subscriptions.live_subscriptions(db.session(), principal.customer_id)
    current_ids = {s.product_id for s in live}
    by_id = {p.id: p for p in every_product}
    table = PricingTable(
        products=[_pricing_product(p, current_ids) for p in products],
        currentSubscription=_current_subscription(live[0] if live else None, by_id),
    )
    return json_response(table)


register(
    SDK_2026_01_01,
    "catalog.list_products",
    RouteTranslator(
        serve=_serve_pricing_table,
        # A merchant's server listing its catalog gets the 2026-11-27 list in every version.
        credential="session_token",
        query=SdkProductsQuery,
        responses={200: ProductsAnswer},
    ),
)
