from __future__ import annotations

import uuid

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import ANY_CREDENTIAL, SECRET_KEY, json_response, operation
from app.auth import MerchantPrincipal, current_merchant, current_principal
from app.catalog import service
from app.catalog.schemas import (
    FeatureDefinitionList,
    FeatureDefinitionOut,
    FeatureLimitIn,
    FeatureUpdate,
    ProductCreate,
    ProductList,
    ProductListQuery,
    ProductOut,
    ProductUpdate,
)
from app.db import db

bp = Blueprint("catalog", __name__)


@bp.post("/v1/products")
@operation(
    summary="Create a product with its prices and features",
    auth=SECRET_KEY,
    body=ProductCreate,
    responses={201: ProductOut},
    errors={422: "validation_error"},
    tags=["catalog"],
)
def create_product(body: ProductCreate) -> ResponseReturnValue:
    principal = current_principal()
    product = service.create_product(principal.organization_id, body)
    db.session.commit()
    return json_response(service.product_out(product), 201)


@bp.get("/v1/products")
@operation(
    summary="List products",
    description=(
        "With a secret key: every product of the organization (archived ones with "
        "`include_archived=true`), paginated. With a session token: the active products and "
        "their active prices, oldest first (the pricing table's order), paginated alike."
    ),
    auth=ANY_CREDENTIAL,
    query=ProductListQuery,
    responses={200: ProductList},
    tags=["catalog"],
)
def list_products(query: ProductListQuery) -> ResponseReturnValue:
    principal = current_principal()
    if isinstance(principal, MerchantPrincipal):
        products, has_more = service.list_products(principal.organization_id, query)
        data = [service.product_out(p) for p in products]
    else:
        products, has_more = service.list_active_products(principal.organization_id, query)
        data = [service.product_out(p, active_prices_only=True) for p in products]
    return json_response(ProductList(data=data, has_more=has_more))


@bp.get("/v1/products/<uuid:product_id>")
@operation(
    summary="Retrieve a product",
    auth=SECRET_KEY,
    responses={200: ProductOut},
    errors={404: "product_not_found"},
    tags=["catalog"],
)
def get_product(product_id: uuid.UUID) -> ResponseReturnValue:
    product = service.get_product(current_principal().organization_id, product_id)
    return json_response(service.product_out(product))


@bp.patch("/v1/products/<uuid:product_id>")
@operation(
    summary="Rename, describe, archive (`active: false`) or restore a product",
    auth=SECRET_KEY,
    body=ProductUpdate,
    responses={200: ProductOut},
    errors={404: "product_not_found"},
    tags=["catalog"],
)
def update_product(product_id: uuid.UUID, body: ProductUpdate) -> ResponseReturnValue:
    product = service.update_product(current_principal().organization_id, product_id, body)
    db.session.commit()
    return json_response(service.product_out(product))


# --- feature definitions and the limits products grant -----------------------------------------


@bp.get("/v1/features")
@operation(
    summary="The organization's features: type, period, unit, whether grants add up",
    auth=SECRET_KEY,
    responses={200: FeatureDefinitionList},
    tags=["catalog"],
)
def list_features() -> ResponseReturnValue:
    features = service.list_features(current_merchant().organization_id)
    return json_response(FeatureDefinitionList(data=[service.feature_out(f) for f in features]))


@bp.patch("/v1/features/<string:key>")
@operation(
    summary="Define a feature (type, quota period, unit, additive); customers see it at once",
    auth=SECRET_KEY,
    body=FeatureUpdate,
    responses={200: FeatureDefinitionOut},
    errors={404: "feature_not_found"},
    tags=["catalog"],
)
def update_feature(key: str, body: FeatureUpdate) -> ResponseReturnValue:
    feature = service.update_feature(current_merchant().organization_id, key, body)
    db.session.commit()
    return json_response(service.feature_out(feature))


@bp.put("/v1/products/<uuid:product_id>/features/<string:key>")
@operation(
    summary="Grant a feature from a product with a limit (-1 unlimited), or change its limit",
    description="Takes effect at once for every customer who owns the product: a lower limit"
    " is what their next read shows.",
    auth=SECRET_KEY,
    body=FeatureLimitIn,
    responses={200: ProductOut},
    errors={404: "product_not_found"},
    tags=["catalog"],
)
def set_feature_limit(product_id: uuid.UUID, key: str, body: FeatureLimitIn) -> ResponseReturnValue:
    product = service.set_feature_limit(current_merchant().organization_id, product_id, key, body)
    db.session.commit()
    return json_response(service.product_out(product))
