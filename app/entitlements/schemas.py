from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EntitlementOut(BaseModel):
    feature_key: str
    product_id: str
    source: Literal["subscription", "purchase"]
    expires_at: datetime | None = Field(
        description="When the grant lapses (the subscription's period or trial end); "
        "null for a one-time purchase."
    )


class EntitlementList(BaseModel):
    data: list[EntitlementOut]
    has_more: bool = False


# --- /v1/features (the React SDK's `useFeature`, `FeatureGate`) -------------------------------


class FeatureCheckQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature_key: str = Field(min_length=1, max_length=100)


class FeatureAccessOut(BaseModel):
    """What the SDK reads about one feature; `limit`/`usage` stay null until usage metering."""

    feature_key: str
    has_access: bool
    limit: int | None = None
    usage: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class FeatureAccessList(BaseModel):
    entitlements: list[FeatureAccessOut]
