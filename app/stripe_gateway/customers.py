"""Customers and the catalog (products, prices) in Stripe."""

from __future__ import annotations

import uuid

import stripe
from stripe.params import (
    CustomerCreateParams,
    PriceCreateParams,
    ProductCreateParams,
)

from app.stripe_gateway.client import GatewayClient
from app.stripe_gateway.errors import (
    InvalidStripeRequest,
)
from app.stripe_gateway.metadata import (
    CUSTOMER_METADATA,
    PRICE_METADATA,
    PRODUCT_METADATA,
    _metadata,
    customer_create_key,
)


class CustomerCalls(GatewayClient):
    # ------------------------------------------------------------------ customers

    def create_customer(
        self,
        *,
        customer_id: uuid.UUID,
        organization_id: uuid.UUID,
        external_id: str,
        email: str | None,
        name: str | None,
        idempotency_key: str | None = None,
    ) -> stripe.Customer:
        """Create the Stripe customer of one of our customers (key: `customer_create_key`)."""
        params: CustomerCreateParams = {
            "metadata": _metadata(
                organization_id,
                **{CUSTOMER_METADATA: str(customer_id)},
                billingos_external_id=external_id,
            )
        }
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        return self._call(
            lambda: self.client.v1.customers.create(
                params=params,
                options={"idempotency_key": idempotency_key or customer_create_key(customer_id)},
            )
        )

    def find_customer(self, customer_id: uuid.UUID) -> stripe.Customer | None:
        """The Stripe customer made for our customer, found by metadata (a recovery path)."""
        result = self._call(
            lambda: self.client.v1.customers.search(
                params={"query": f"metadata['{CUSTOMER_METADATA}']:'{customer_id}'", "limit": 1}
            )
        )
        return result.data[0] if result.data else None

    def ensure_customer(
        self,
        *,
        customer_id: uuid.UUID,
        organization_id: uuid.UUID,
        external_id: str,
        email: str | None,
        name: str | None,
        stripe_customer_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """The Stripe customer id of our customer: the stored one, or a newly created one."""
        if stripe_customer_id:
            return stripe_customer_id
        try:
            return self.create_customer(
                customer_id=customer_id,
                organization_id=organization_id,
                external_id=external_id,
                email=email,
                name=name,
                idempotency_key=idempotency_key,
            ).id
        except InvalidStripeRequest as error:
            # The same key with other parameters (the email changed within 24 h): the customer
            # exists already, so find it instead of making a second one.
            if error.code != "idempotency_error":
                raise
            found = self.find_customer(customer_id)
            if found is None:
                raise
            return found.id

    # ------------------------------------------------------------------ catalog

    def create_product(
        self,
        *,
        product_id: uuid.UUID,
        organization_id: uuid.UUID,
        name: str,
        description: str | None,
        idempotency_key: str | None = None,
    ) -> stripe.Product:
        params: ProductCreateParams = {
            "name": name,
            "metadata": _metadata(organization_id, **{PRODUCT_METADATA: str(product_id)}),
        }
        if description:
            params["description"] = description
        return self._call(
            lambda: self.client.v1.products.create(
                params=params,
                options={"idempotency_key": idempotency_key or f"product:{product_id}:mirror"},
            )
        )

    def create_price(
        self,
        *,
        price_id: uuid.UUID,
        organization_id: uuid.UUID,
        stripe_product_id: str,
        amount: int,
        currency: str,
        interval: str | None,
        idempotency_key: str | None = None,
    ) -> stripe.Price:
        params: PriceCreateParams = {
            "product": stripe_product_id,
            "unit_amount": amount,
            "currency": currency,
            "metadata": _metadata(organization_id, **{PRICE_METADATA: str(price_id)}),
        }
        if interval is not None:
            params["recurring"] = {"interval": interval}
        return self._call(
            lambda: self.client.v1.prices.create(
                params=params,
                options={"idempotency_key": idempotency_key or f"price:{price_id}:mirror"},
            )
        )
