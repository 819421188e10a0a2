"""Products and prices mirrored to Stripe.

A task mirrors each product right after it is created (`catalog.mirror_product`); a checkout
mirrors its price lazily if that has not happened yet. Both send the same idempotency keys
(`product:{id}:mirror`, `price:{id}:mirror`, renewed after a failure Stripe stored: see
app/stripe_keys.py), so a race between them makes one Stripe object, and the id is stored only
where none is stored yet.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update

from app.db import db
from app.stripe_gateway import get_gateway
from app.stripe_keys import with_renewable_key
from models import Product, ProductPrice


def mirror_product(product_id: uuid.UUID) -> None:
    """Create the product and all its prices in Stripe (no-op for what is already there)."""
    with db.transaction() as session:
        price_ids = list(
            session.execute(
                select(ProductPrice.id).where(
                    ProductPrice.product_id == product_id,
                    ProductPrice.stripe_price_id.is_(None),
                )
            ).scalars()
        )
    stripe_product_id = ensure_stripe_product(product_id)
    if stripe_product_id is None:
        return
    for price_id in price_ids:
        ensure_stripe_price(price_id)


def ensure_stripe_product(product_id: uuid.UUID) -> str | None:
    """The Stripe product id of our product (None if the product does not exist)."""
    with db.transaction() as session:
        product = session.execute(
            select(
                Product.organization_id,
                Product.name,
                Product.description,
                Product.stripe_product_id,
            ).where(Product.id == product_id)
        ).first()
    if product is None:
        return None
    if product.stripe_product_id:
        return str(product.stripe_product_id)
    created = with_renewable_key(
        f"product:{product_id}:mirror",
        lambda key: get_gateway().create_product(
            product_id=product_id,
            organization_id=product.organization_id,
            name=product.name,
            description=product.description,
            idempotency_key=key,
        ),
    )
    return _store(Product, product_id, Product.stripe_product_id, created.id)


def ensure_stripe_price(price_id: uuid.UUID) -> str:
    """The Stripe price id of our price, creating its product and it in Stripe if needed."""
    with db.transaction() as session:
        price = session.execute(
            select(
                ProductPrice.organization_id,
                ProductPrice.product_id,
                ProductPrice.amount,
                ProductPrice.currency,
                ProductPrice.interval,
                ProductPrice.stripe_price_id,
            ).where(ProductPrice.id == price_id)
        ).one()
    if price.stripe_price_id:
        return str(price.stripe_price_id)
    stripe_product_id = ensure_stripe_product(price.product_id)
    assert stripe_product_id is not None  # the price's foreign key
    created = with_renewable_key(
        f"price:{price_id}:mirror",
        lambda key: get_gateway().create_price(
            price_id=price_id,
            organization_id=price.organization_id,
            stripe_product_id=stripe_product_id,
            amount=price.amount,
            currency=price.currency,
            interval=price.interval,
            idempotency_key=key,
        ),
    )
    return _store(ProductPrice, price_id, ProductPrice.stripe_price_id, created.id)


def _store(
    model: type[Product] | type[ProductPrice], row_id: uuid.UUID, column: Any, stripe_id: str
) -> str:
    """Record `stripe_id` unless a concurrent mirror already did; return the stored id."""
    with db.transaction() as session:
        session.execute(
            update(model)
            .where(model.id == row_id, column.is_(None))
            .values({column.key: stripe_id})
        )
        stored = session.execute(select(column).where(model.id == row_id)).scalar_one()
    return str(stored)
