from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


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
