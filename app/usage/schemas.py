from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.catalog.schemas import FEATURE_KEY_PATTERN, MAX_LIMIT, FeatureType
from app.request_models import RequestModel


class GrantSource(BaseModel):
    product_id: str
    source: Literal["subscription", "purchase"]
    expires_at: datetime | None


class FeatureGrant(BaseModel):
    """One feature a customer holds now: its combined limit and its current usage period."""

    feature_id: str
    feature_key: str
    title: str
    type: FeatureType
    unit: str | None
    limit: int | None = Field(description="-1 unlimited; null for a boolean_flag.")
    period_start: datetime | None
    period_end: datetime | None
    sources: list[GrantSource]


class FeatureGrantList(BaseModel):
    data: list[FeatureGrant]


class TrackUsageIn(RequestModel):
    feature_key: str = Field(pattern=FEATURE_KEY_PATTERN)
    quantity: int = Field(ge=1, le=MAX_LIMIT)
    timestamp: datetime | None = Field(
        default=None,
        # Strict bodies take no strings for datetimes; an ISO 8601 string is how JSON sends one.
        strict=False,
        description="When the usage happened (default now); it must fall in the current period.",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="A retry with the same key counts once (recognized for 35 days).",
    )
    metadata: dict[str, Any] | None = None
    customer_external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="With a secret key only: the customer (your user id) the usage is for.",
    )


class TrackUsageOut(BaseModel):
    feature_key: str
    quantity: int
    consumed: int
    limit: int | None
    remaining: int | None = Field(description="null when unlimited.")
    period_start: datetime
    period_end: datetime
    duplicate: bool = Field(description="True when the idempotency key was already recorded.")


class UsageMetricsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature_key: str | None = Field(default=None, min_length=1, max_length=100)


class UsageMetric(BaseModel):
    feature_key: str
    feature_title: str
    current_usage: int
    consumed: int
    limit: int | None
    remaining: int | None
    unit: str | None
    period_start: datetime
    period_end: datetime


class UsageMetricsOut(BaseModel):
    metrics: list[UsageMetric]
