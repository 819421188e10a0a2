from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from app.currencies import CURRENCIES, MAX_CHARGE, charge_amount_problem
from app.pagination import ListQuery
from app.request_models import RequestModel

FEATURE_KEY_PATTERN = r"^[a-z0-9][a-z0-9_.:-]{0,99}$"
# The largest amount Stripe takes in any currency; each currency's own range is checked below.
MAX_AMOUNT = max(MAX_CHARGE.values())


FeatureType = Literal["boolean_flag", "numeric_limit", "usage_quota"]
LIMITED_TYPES = ("numeric_limit", "usage_quota")
# Limits are counts; -1 means unlimited.
MAX_LIMIT = 10**15


class FeatureDefinition(RequestModel):
    """What a feature is: shared by every product of the organization that grants it."""

    type: FeatureType | None = Field(
        default=None, description="Unchanged when omitted (a new feature: `boolean_flag`)."
    )
    period: Literal["month", "year"] | None = Field(
        default=None,
        description="A quota's calendar window when no subscription grants it (default month);"
        " a subscription's quota follows its billing period.",
    )
    unit: str | None = Field(default=None, min_length=1, max_length=50)
    additive: bool | None = Field(
        default=None,
        description="Two grants of the feature add up; otherwise the largest limit wins.",
    )


class FeatureIn(FeatureDefinition):
    key: str = Field(pattern=FEATURE_KEY_PATTERN, description="Entitlement key, e.g. `pro_export`.")
    name: str = Field(min_length=1, max_length=200)
    limit: int | None = Field(
        default=None,
        ge=-1,
        le=MAX_LIMIT,
        description="What this product grants of a numeric_limit/usage_quota; -1 unlimited.",
    )

    @model_validator(mode="after")
    def limit_matches_type(self) -> FeatureIn:
        if self.type in LIMITED_TYPES and self.limit is None:
            raise ValueError(f"a {self.type} feature needs a limit (-1 for unlimited)")
        if self.type == "boolean_flag" and self.limit is not None:
            raise ValueError("a boolean_flag feature has no limit")
        return self


class FeatureUpdate(FeatureDefinition):
    name: str | None = Field(default=None, min_length=1, max_length=200)


class FeatureLimitIn(RequestModel):
    limit: int | None = Field(
        ge=-1, le=MAX_LIMIT, description="-1 unlimited; null for an on/off feature."
    )


class PriceIn(RequestModel):
    amount: int = Field(ge=0, le=MAX_AMOUNT, description="Integer minor units (cents).")
    currency: str = Field(min_length=3, max_length=3, description="Lower-case ISO 4217 code.")
    interval: Literal["month", "year"] | None = None
    trial_period_days: int | None = Field(default=None, ge=1, le=730)

    @field_validator("currency")
    @classmethod
    def known_currency(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError("unknown or unsupported currency (use lower-case ISO 4217)")
        return value

    @model_validator(mode="after")
    def consistent(self) -> PriceIn:
        if self.interval is None:
            if self.trial_period_days is not None:
                raise ValueError("trial_period_days needs a recurring price (interval)")
            if self.amount == 0:
                raise ValueError("a one-time price must have a positive amount")
        if self.amount != 0:
            # A $0 recurring price is free; any other must be an amount Stripe can charge
            # (a checkout of it would otherwise fail only once the buyer tried to pay).
            problem = charge_amount_problem(self.amount, self.currency)
            if problem is not None:
                raise ValueError(f"amount {problem}")
        return self


class ProductCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    features: list[FeatureIn] = Field(default_factory=list, max_length=50)
    prices: list[PriceIn] = Field(min_length=1, max_length=10)

    @field_validator("name")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value

    @field_validator("features")
    @classmethod
    def unique_keys(cls, value: list[FeatureIn]) -> list[FeatureIn]:
        keys = [f.key for f in value]
        if len(keys) != len(set(keys)):
            raise ValueError("feature keys must be unique")
        return value


class ProductUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    active: bool | None = None


class ProductListQuery(ListQuery):
    include_archived: bool = False


class FeatureOut(BaseModel):
    key: str
    name: str
    type: FeatureType = "boolean_flag"
    limit: int | None = Field(default=None, description="What this product grants; -1 unlimited.")
    period: Literal["month", "year"] | None = None
    unit: str | None = None


class FeatureDefinitionOut(BaseModel):
    id: str
    key: str
    name: str
    type: FeatureType
    period: Literal["month", "year"] | None
    unit: str | None
    additive: bool


class FeatureDefinitionList(BaseModel):
    data: list[FeatureDefinitionOut]


class PriceOut(BaseModel):
    id: str
    product_id: str
    amount: int
    currency: str
    type: Literal["one_time", "recurring"]
    interval: Literal["month", "year"] | None
    trial_period_days: int | None


class ProductOut(BaseModel):
    id: str
    name: str
    description: str | None
    features: list[FeatureOut]
    prices: list[PriceOut]
    active: bool


class ProductList(BaseModel):
    data: list[ProductOut]
    has_more: bool
