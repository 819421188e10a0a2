"""Products, prices and the features they grant, scoped to one organization."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import selectinload

from app import jobs
from app.catalog.schemas import (
    FeatureOut,
    PriceOut,
    ProductCreate,
    ProductListQuery,
    ProductOut,
    ProductUpdate,
)
from app.db import db
from app.errors import NotFound
from app.pagination import ListQuery, paginate
from models import Feature, Product, ProductPrice


class ProductNotFound(NotFound):
    code = "product_not_found"
    title = "Product not found"


class PriceNotFound(NotFound):
    code = "price_not_found"
    title = "Price not found"


def _with_children(stmt):  # type: ignore[no-untyped-def]
    return stmt.options(selectinload(Product.prices), selectinload(Product.features))


def create_product(organization_id: uuid.UUID, data: ProductCreate) -> Product:
    session = db.session
    product = Product(organization_id=organization_id, name=data.name, description=data.description)
    session.add(product)
    if data.features:
        # Features are shared by key across an organization's products; the upsert keeps two
        # concurrent product creations naming the same key from colliding.
        rows = session.execute(
            insert(Feature)
            .values(
                [
                    {
                        "id": uuid.uuid4(),
                        "organization_id": organization_id,
                        "key": f.key,
                        "name": f.name,
                    }
                    for f in data.features
                ]
            )
            .on_conflict_do_update(
                constraint="uq_features_organization_id_key",
                set_={"name": insert(Feature).excluded.name},
            )
            .returning(Feature.id)
        ).scalars()
        feature_ids = list(rows)
        product.features = list(
            session.execute(
                select(Feature)
                .where(Feature.id.in_(feature_ids))
                .order_by(Feature.key)
                # The upsert may have renamed a feature this session already holds.
                .execution_options(populate_existing=True)
            ).scalars()
        )
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
        features=[FeatureOut(key=f.key, name=f.name) for f in product.features],
        prices=[price_out(p) for p in prices],
        active=product.active,
    )
