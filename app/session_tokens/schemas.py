from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.api import RequestModel

EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,255}$"


class CustomerIn(RequestModel):
    external_id: str = Field(min_length=1, max_length=255, description="The merchant's user id.")
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    name: str | None = Field(default=None, max_length=255)


class SessionTokenCreate(RequestModel):
    customer: CustomerIn
    expires_in: int = Field(default=3600, ge=60, le=86400, description="Seconds, 60–86400.")


class SessionTokenRevoke(RequestModel):
    token: str = Field(min_length=1, max_length=200)


class CustomerOut(BaseModel):
    id: str
    external_id: str
    email: str | None
    name: str | None


class SessionTokenOut(BaseModel):
    id: str = Field(description="Revoke it with `DELETE /v1/session-tokens/{id}`.")
    token: str
    expires_at: datetime
    customer: CustomerOut


class RevokedOut(BaseModel):
    revoked: bool


class RevokedTokenOut(BaseModel):
    id: str
    revoked: bool
