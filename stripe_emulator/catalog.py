"""Customers (with search) and the catalog: products and prices."""

from __future__ import annotations

import re
from typing import Any

from . import objects
from .errors import invalid
from .params import Params, StripeObject, apply_metadata, missing_param, parse_bool, parse_int
from .payment_methods import PaymentMethods

# one term of a customer search: [-]field[['key']] (:|~) 'value'
_SEARCH_TERM = re.compile(
    r"\s*(-?)([a-z_]+)(?:\['([^']+)'\]|\[\"([^\"]+)\"\])?\s*(:|~)\s*(?:'([^']*)'|\"([^\"]*)\")\s*"
)
_SEARCHABLE_FIELDS = ("email", "name", "phone", "description", "id")
_CUSTOMER_TEXT_FIELDS = (
    "email",
    "name",
    "description",
    "phone",
    "shipping",
    "tax_exempt",
    "invoice_prefix",
)
_PRODUCT_TEXT_FIELDS = (
    "name",
    "description",
    "url",
    "unit_label",
    "statement_descriptor",
    "tax_code",
    "images",
    "default_price",
)
# the product_data fields a price may create its product with
_INLINE_PRODUCT_FIELDS = (
    "name",
    "active",
    "metadata",
    "id",
    "unit_label",
    "statement_descriptor",
    "tax_code",
)
_INTERVALS = ("day", "week", "month", "year")


class _SearchTerm:
    def __init__(self, match: re.Match[str]) -> None:
        negated, self.field, key1, key2, self.operator, value1, value2 = match.groups()
        self.negated = bool(negated)
        self.metadata_key: str = key1 or key2 or ""
        self.value: str = value1 if value1 is not None else value2

    def matches(self, customer: StripeObject) -> bool:
        if self.field == "metadata":
            actual = customer["metadata"].get(self.metadata_key)
        elif self.field in _SEARCHABLE_FIELDS:
            actual = customer.get(self.field)
        else:
            raise invalid(
                f"Field '{self.field}' is an unsupported search field", "query", store=False
            )
        if actual is None:
            hit = False
        elif self.operator == "~":
            hit = self.value.lower() in str(actual).lower()
        else:
            hit = str(actual).lower() == self.value.lower()
        return hit != self.negated


class CustomersAndCatalog(PaymentMethods):
    # ----------------------------------------------------------------- customers
    def op_customers_create(self, _id: str | None, params: Params) -> StripeObject:
        customer = objects.customer(objects.new_id("cus", 14), self.now(), params)
        apply_metadata(customer, params.get("metadata"))
        self._save(customer)
        if params.get("payment_method"):
            pm = self._resolve_payment_method(params["payment_method"], "payment_method")
            self._attach_payment_method(pm, customer["id"], emit=False)
        default_pm = (params.get("invoice_settings") or {}).get("default_payment_method")
        if default_pm:
            pm = self._resolve_payment_method(
                default_pm, "invoice_settings[default_payment_method]"
            )
            self._attach_payment_method(pm, customer["id"], emit=False)
            customer["invoice_settings"]["default_payment_method"] = pm["id"]
        self.emit("customer.created", customer)
        return customer

    def op_customers_retrieve(self, customer_id: str | None, params: Params) -> StripeObject:
        return self._require("customer", customer_id, "customer")

    def op_customers_update(self, customer_id: str | None, params: Params) -> StripeObject:
        customer = self._require("customer", customer_id, "customer")
        previous: dict[str, Any] = {}
        for key in _CUSTOMER_TEXT_FIELDS:
            if key in params:
                new = params[key] or None
                if key == "tax_exempt":
                    new = new or "none"
                if customer[key] != new:
                    previous[key] = customer[key]
                    customer[key] = new
        if "address" in params:
            previous["address"] = customer["address"]
            customer["address"] = objects._address(params["address"]) if params["address"] else None
        if "balance" in params:
            previous["balance"] = customer["balance"]
            customer["balance"] = parse_int(params["balance"], "balance")
        if "preferred_locales" in params:
            previous["preferred_locales"] = customer["preferred_locales"]
            customer["preferred_locales"] = list(params["preferred_locales"] or [])
        if "next_invoice_sequence" in params:
            customer["next_invoice_sequence"] = parse_int(
                params["next_invoice_sequence"], "next_invoice_sequence"
            )
        invoice_settings = params.get("invoice_settings")
        if isinstance(invoice_settings, dict) and "default_payment_method" in invoice_settings:
            old_settings = dict(customer["invoice_settings"])
            default_pm = invoice_settings["default_payment_method"]
            if default_pm:
                pm = self._resolve_payment_method(
                    default_pm, "invoice_settings[default_payment_method]"
                )
                self._attach_payment_method(pm, customer["id"])
                default_pm = pm["id"]
            customer["invoice_settings"]["default_payment_method"] = default_pm or None
            previous["invoice_settings"] = old_settings
        if "metadata" in params:
            old_metadata = customer["metadata"]
            apply_metadata(customer, params["metadata"])
            if old_metadata != customer["metadata"]:
                previous["metadata"] = old_metadata
        if previous:
            self.emit("customer.updated", customer, previous)
        return customer

    def op_customers_list(self, _id: str | None, params: Params) -> dict[str, Any]:
        email = params.get("email")
        return self._list(
            "customer",
            params,
            "/v1/customers",
            (lambda customer: customer["email"] == email) if email else None,
        )

    def op_customers_search(self, _id: str | None, params: Params) -> dict[str, Any]:
        query = str(params.get("query") or "")
        parts = re.split(r"\s+(AND|OR)\s+", query.strip())
        term_texts, joins = parts[0::2], set(parts[1::2])
        if len(joins) > 1:
            raise invalid("Mixing AND and OR is not supported", "query", store=False)
        terms = []
        for text in term_texts:
            match = _SEARCH_TERM.fullmatch(text)
            if not match:
                raise invalid(
                    f"Invalid search query: {query}",
                    "query",
                    "parameter_invalid_string",
                    store=False,
                )
            terms.append(_SearchTerm(match))
        combine = any if "OR" in joins else all
        hits = [
            customer
            for customer in self._newest_first("customer")
            # a list, not a generator: every term is checked, so bad fields always answer 400
            if combine([term.matches(customer) for term in terms])
        ]
        limit = parse_int(params.get("limit", 10), "limit")
        offset = parse_int(params["page"], "page") if params.get("page") else 0
        has_more = len(hits) > offset + limit
        return {
            "object": "search_result",
            "data": hits[offset : offset + limit],
            "has_more": has_more,
            "next_page": str(offset + limit) if has_more else None,
            "url": "/v1/customers/search",
        }

    # ----------------------------------------------------------------- products
    def op_products_create(self, _id: str | None, params: Params) -> StripeObject:
        product_id = params.get("id") or objects.new_id("prod", 14)
        if product_id in self.objects:
            raise invalid(f"Product already exists: {product_id}", "id", "resource_already_exists")
        product = objects.product(product_id, self.now(), params)
        product["active"] = parse_bool(params.get("active", True), "active")
        if "shippable" in params:
            product["shippable"] = parse_bool(params["shippable"], "shippable")
        apply_metadata(product, params.get("metadata"))
        self._save(product)
        self.emit("product.created", product)
        return product

    def op_products_retrieve(self, product_id: str | None, params: Params) -> StripeObject:
        return self._require("product", product_id, "product")

    def op_products_update(self, product_id: str | None, params: Params) -> StripeObject:
        product = self._require("product", product_id, "product")
        previous: dict[str, Any] = {}
        for key in _PRODUCT_TEXT_FIELDS:
            if key in params:
                previous[key] = product[key]
                product[key] = params[key] or ([] if key == "images" else None)
        for key in ("active", "shippable"):
            if key in params:
                previous[key] = product[key]
                product[key] = parse_bool(params[key], key)
        if "metadata" in params:
            previous["metadata"] = product["metadata"]
            apply_metadata(product, params["metadata"])
        product["updated"] = self.now()
        self.emit("product.updated", product, previous)
        return product

    def op_products_list(self, _id: str | None, params: Params) -> dict[str, Any]:
        active = parse_bool(params["active"], "active") if "active" in params else None
        ids = set(params["ids"]) if isinstance(params.get("ids"), list) else None
        return self._list(
            "product",
            params,
            "/v1/products",
            lambda product: (
                (active is None or product["active"] == active)
                and (ids is None or product["id"] in ids)
            ),
        )

    # ----------------------------------------------------------------- prices
    def _product_for_new_price(self, params: Params) -> StripeObject:
        if "product" in params:
            return self._require("product", params["product"], "product", "product")
        if isinstance(params.get("product_data"), dict):
            product_data = dict(params["product_data"])
            if not product_data.get("name"):
                raise missing_param("product_data[name]")
            return self.op_products_create(
                None, {k: v for k, v in product_data.items() if k in _INLINE_PRODUCT_FIELDS}
            )
        raise missing_param("product")

    def op_prices_create(self, _id: str | None, params: Params) -> StripeObject:
        product = self._product_for_new_price(params)
        if "unit_amount" not in params and "unit_amount_decimal" not in params:
            raise missing_param("unit_amount")
        if "unit_amount" in params and parse_int(params["unit_amount"], "unit_amount") < 0:
            raise invalid("Invalid unit_amount", "unit_amount", store=False)
        recurring = params.get("recurring")
        if recurring is not None and (
            not isinstance(recurring, dict) or recurring.get("interval") not in _INTERVALS
        ):
            raise invalid("Invalid recurring[interval]", "recurring[interval]", store=False)
        price = objects.price(objects.new_id("price"), self.now(), params, product["id"])
        price["active"] = parse_bool(params.get("active", True), "active")
        apply_metadata(price, params.get("metadata"))
        self._save(price)
        if product["default_price"] is None:
            product["default_price"] = price["id"]
        self.emit("price.created", price)
        return price

    def op_prices_retrieve(self, price_id: str | None, params: Params) -> StripeObject:
        return self._require("price", price_id, "price")

    def op_prices_update(self, price_id: str | None, params: Params) -> StripeObject:
        price = self._require("price", price_id, "price")
        previous: dict[str, Any] = {}
        for key in ("nickname", "lookup_key", "tax_behavior"):
            if key in params:
                previous[key] = price[key]
                price[key] = params[key] or None
        if "active" in params:
            previous["active"] = price["active"]
            price["active"] = parse_bool(params["active"], "active")
        if "metadata" in params:
            previous["metadata"] = price["metadata"]
            apply_metadata(price, params["metadata"])
        self.emit("price.updated", price, previous)
        return price

    def op_prices_list(self, _id: str | None, params: Params) -> dict[str, Any]:
        active = parse_bool(params["active"], "active") if "active" in params else None
        product, price_type = params.get("product"), params.get("type")
        currency = params.get("currency")
        lookup_keys = (
            set(params["lookup_keys"]) if isinstance(params.get("lookup_keys"), list) else None
        )
        return self._list(
            "price",
            params,
            "/v1/prices",
            lambda price: (
                (active is None or price["active"] == active)
                and (not product or price["product"] == product)
                and (not price_type or price["type"] == price_type)
                and (not currency or price["currency"] == currency.lower())
                and (lookup_keys is None or price["lookup_key"] in lookup_keys)
            ),
        )
