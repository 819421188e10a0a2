from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app.request_models import RequestModel

# scheme://host[:port], as a browser sends it in `Origin` (no path, no trailing slash).
ORIGIN_PATTERN = r"^https?://[A-Za-z0-9.-]{1,200}(:[0-9]{1,5})?$"

Origin = Annotated[str, Field(pattern=ORIGIN_PATTERN, max_length=255)]
ApiVersion = Literal["2026-01-01", "2026-11-27"]


class OrganizationOut(BaseModel):
    id: str
    name: str
    api_version: ApiVersion = Field(
        description="The version a request without `X-BillingOS-Version` is rendered in."
    )
    allowed_origins: list[str] = Field(
        description="Browser origins the SDK may call the API from (CORS)."
    )


class OrganizationUpdate(RequestModel):
    allowed_origins: list[Origin] | None = Field(default=None, max_length=50)
    api_version: ApiVersion | None = None
