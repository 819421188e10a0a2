from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.api_keys.service import key_status
from app.request_models import RequestModel
from models import ApiKey

# A rotation's overlap may be shortened to nothing or stretched to a month, no further: a key
# meant to be replaced should not linger.
MAX_OVERLAP_SECONDS = 30 * 86400


class ApiKeyCreate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)


class ApiKeyRotate(RequestModel):
    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="How long the old key keeps working (default: the server's setting).",
    )


class ApiKeyOut(BaseModel):
    id: str
    name: str | None
    # The key's first characters (`bos_sk_test_AbCd`), never the key.
    prefix: str
    status: Literal["active", "rotating", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(
        description="Approximate: recorded at most once every few minutes per key."
    )


class ApiKeyCreated(ApiKeyOut):
    """Returned once, at creation or rotation: the only time the secret is shown."""

    secret: str


class ApiKeyRotated(BaseModel):
    new_key: ApiKeyCreated
    old_key: ApiKeyOut


class ApiKeyList(BaseModel):
    data: list[ApiKeyOut]
    has_more: bool


def api_key_out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=str(row.id),
        name=row.name,
        prefix=row.key_prefix,
        status=key_status(row),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def api_key_created(row: ApiKey, secret: str) -> ApiKeyCreated:
    return ApiKeyCreated(**api_key_out(row).model_dump(), secret=secret)
