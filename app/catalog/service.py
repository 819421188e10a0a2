"""Products, prices and the features they grant, scoped to one organization."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import selectinload

from app import jobs
from app.catalog.schemas import (
    FeatureDefinition,
    FeatureDefinitionOut,
    FeatureIn,
    FeatureLimitIn,
    FeatureOut,
    FeatureUpdate,
    PriceOut,
    ProductCreate,
    ProductListQuery,
    ProductOut,
    ProductUpdate,
)
from app.db import db
from app.errors import NotFound
from app.pagination import ListQuery, paginate
from models import Feature, Product, ProductPrice, product_features


class ProductNotFound(NotFound):
    code = "product_not_found"
    title = "Product not found"


class FeatureNotFound(NotFound):
    code = "feature_not_found"
    title = "Feature not found"


class PriceNotFound(NotFound):
    code = "price_not_found"
    title = "Price not found"


def _with_children(stmt):  # type: ignore[no-untyped-def]
    return stmt.options(
        selectinload(Product.prices),
        selectinload(Product.features),
        selectinload(Product.feature_grants),
    )


def create_product(organization_id: uuid.UUID, data: ProductCreate) -> Product:
    session = db.session
    product = Product(organization_id=organization_id, name=data.name, description=data.description)
    session.add(product)
    if data.features:
        session.flush()
        feature_ids = _upsert_features(organization_id, data.features)
        session.execute(
            insert(product_features).values(
                [
                    {
                        "product_id": product.id,
                        "feature_id": feature_ids[f.key],
                        "limit_value": f.limit,
                    }
                    for f in data.features
                ]
            )
        )
        # Core statements bypass the identity map: refresh the features (the upsert may have
        # renamed or redefined one this session holds) and the product's links to them.
        session.execute(
            select(Feature)
            .where(Feature.id.in_(feature_ids.values()))
            .execution_options(populate_existing=True)
        ).all()
        session.expire(product, ["features", "feature_grants"])
    for price in data.prices:
        product.prices.append(
            ProductPrice(
                organization_id=organization_id,
                amount=price.amount,
                currency=price.currency,
                type="recurring" if price.interval else "one_time",
                interval=price.interval,
                trial_period_days=price.trial_period_days,
            )
        )
    session.flush()
    jobs.enqueue_after_commit(db.session(), jobs.CATALOG_MIRROR_PRODUCT, str(product.id))
    return product


def _upsert_features(organization_id: uuid.UUID, features: list[FeatureIn]) -> dict[str, uuid.UUID]:
    """Feature ids by key, creating the missing ones; a definition given here replaces the
    stored one field by field (omitted fields keep their value)."""
    # Features are shared by key across an organization's products; the upsert keeps two
    # concurrent product creations naming the same key from colliding.
    stmt = insert(Feature).values(
        [
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "key": f.key,
                "name": f.name,
                "type": f.type or "boolean_flag",
                "period": f.period,
                "unit": f.unit,
                "additive": bool(f.additive),
            }
            for f in features
        ]
    )
    rows = db.session.execute(
        stmt.on_conflict_do_update(
            constraint="uq_features_organization_id_key", set_={"name": stmt.excluded.name}
        ).returning(Feature.id, Feature.key)
    ).all()
    ids = {row.key: row.id for row in rows}
    for f in features:
        changes = _definition_changes(f)
        if changes:
            db.session.execute(update(Feature).where(Feature.id == ids[f.key]).values(**changes))
    return ids


def _definition_changes(data: FeatureDefinition) -> dict[str, object]:
    return {
        field: getattr(data, field)
        for field in ("type", "period", "unit", "additive")
        if field in data.model_fields_set
    }


def feature_out(feature: Feature) -> FeatureDefinitionOut:
    return FeatureDefinitionOut(
        id=str(feature.id),
        key=feature.key,
        name=feature.name,
        type=feature.type,
        period=feature.period,
        unit=feature.unit,
        additive=feature.additive,
    )


def list_features(organization_id: uuid.UUID) -> list[Feature]:
    return list(
        db.session.execute(
            select(Feature).where(Feature.organization_id == organization_id).order_by(Feature.key)
        ).scalars()
    )


def get_feature(organization_id: uuid.UUID, key: str) -> Feature:
    feature = db.session.execute(
        select(Feature).where(Feature.organization_id == organization_id, Feature.key == key)
    ).scalar_one_or_none()
    if feature is None:
        raise FeatureNotFound(f"No feature {key!r}.")
    return feature


def update_feature(organization_id: uuid.UUID, key: str, data: FeatureUpdate) -> Feature:
    """Change a feature's definition; every customer holding it reads the change at once."""
    feature = get_feature(organization_id, key)
    changes = _definition_changes(data)
    if data.name is not None:
        changes["name"] = data.name
    for field, value in changes.items():
        setattr(feature, field, value)
    db.session.flush()
    _invalidate_holders(feature.id)
    return feature


def set_feature_limit(
    organization_id: uuid.UUID, product_id: uuid.UUID, key: str, data: FeatureLimitIn
) -> Product:
    """Grant `key` from this product with this limit (linking it if it was not granted yet)."""
    product = get_product(organization_id, product_id)
    feature = get_feature(organization_id, key)
    stmt = insert(product_features).values(
        product_id=product.id, feature_id=feature.id, limit_value=data.limit
    )
    db.session.execute(
        stmt.on_conflict_do_update(
            index_elements=["product_id", "feature_id"],
            set_={"limit_value": stmt.excluded.limit_value},
        )
    )
    # A new link grants the feature to current subscribers: entitlements are derived again.
    from app.entitlements.service import recompute_for_product

    recompute_for_product(product.id)
    _invalidate_holders(feature.id)
    db.session.expire(product, ["features", "feature_grants"])
    return get_product(organization_id, product_id)


def _invalidate_holders(feature_id: uuid.UUID) -> None:
    # Limits are cached per customer beside their entitlements: after the commit, drop the
    # cached answers of every customer granted this feature so none reads the old definition.
    from app.entitlements.service import invalidate_feature_holders

    invalidate_feature_holders(feature_id)


def get_product(organization_id: uuid.UUID, product_id: uuid.UUID) -> Product:
    product = db.session.execute(
        _with_children(select(Product)).where(
            Product.id == product_id, Product.organization_id == organization_id
        )
    ).scalar_one_or_none()
    if product is None:
        raise ProductNotFound("No such product.")
    return product


def update_product(
    organization_id: uuid.UUID, product_id: uuid.UUID, data: ProductUpdate
) -> Product:
    product = get_product(organization_id, product_id)
    for field in data.model_fields_set:
        value = getattr(data, field)
        if field in ("name", "active") and value is None:
            continue
        setattr(product, field, value)
    db.session.flush()
    return product


def list_products(
    organization_id: uuid.UUID, query: ProductListQuery
) -> tuple[list[Product], bool]:
    stmt = _with_children(select(Product)).where(Product.organization_id == organization_id)
    if not query.include_archived:
        stmt = stmt.where(Product.active.is_(True))
    return paginate(stmt, Product, query, organization_id)


def list_active_products(
    organization_id: uuid.UUID, query: ListQuery
) -> tuple[list[Product], bool]:
    """The pricing table's products, in the order the merchant created them."""
    stmt = _with_children(select(Product)).where(
        Product.organization_id == organization_id, Product.active.is_(True)
    )
    return paginate(stmt, Product, query, organization_id, oldest_first=True)


def get_active_price(organization_id: uuid.UUID, price_id: uuid.UUID) -> ProductPrice:
    """The price a customer may buy: it and its product exist in the organization and are active.

    Checkout create applies the same rule inside its one-round-trip statement
    (`app.checkout.service._CREATE_SQL`): change both together.
    """
    price = db.session.execute(
        select(ProductPrice)
        .join(Product, Product.id == ProductPrice.product_id)
        .where(
            ProductPrice.id == price_id,
            ProductPrice.organization_id == organization_id,
            ProductPrice.active.is_(True),
            Product.active.is_(True),
        )
    ).scalar_one_or_none()
    if price is None:
        raise PriceNotFound("No such price, or it is no longer for sale.")
    return price


def price_out(price: ProductPrice) -> PriceOut:
    return PriceOut(
        id=str(price.id),
        product_id=str(price.product_id),
        amount=price.amount,
        currency=price.currency,
        type=price.type,
        interval=price.interval,
        trial_period_days=price.trial_period_days,
    )


def product_out(product: Product, *, active_prices_only: bool = False) -> ProductOut:
    prices = [p for p in product.prices if p.active or not active_prices_only]
    return ProductOut(
        id=str(product.id),
        name=product.name,
        description=product.description,
        features=[
            FeatureOut(
                key=f.key,
                name=f.name,
                type=f.type,
                limit=product.limit_of(f.id),
                period=f.period,
                unit=f.unit,
            )
            for f in product.features
        ],
        prices=[price_out(p) for p in prices],
        active=product.active,
    )
