from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.catalog.schemas import MAX_LIMIT


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
    usage: int | None = Field(
        default=None,
        ge=0,
        le=MAX_LIMIT,
        description="For a numeric_limit: the count the app holds now (has_access is false once"
        " it reaches the limit).",
    )


class FeatureAccessOut(BaseModel):
    """What the SDK reads about one feature.

    `limit`: -1 unlimited, null for a boolean_flag. `usage`: a quota's consumption this period,
    or for a numeric_limit the `?usage=` count the app sent (null when it sent none).
    """

    feature_key: str
    has_access: bool
    limit: int | None = None
    usage: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class FeatureAccessList(BaseModel):
    entitlements: list[FeatureAccessOut]
