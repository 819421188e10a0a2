from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.customers.schemas import CustomerIn, CustomerOut
from app.request_models import RequestModel


class SessionTokenCreate(RequestModel):
    customer: CustomerIn
    expires_in: int = Field(default=3600, ge=60, le=86400, description="Seconds, 60–86400.")


class SessionTokenRevoke(RequestModel):
    token: str = Field(min_length=1, max_length=200)


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
