from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.api import RequestModel
from app.customers.schemas import CustomerIn, CustomerOut


class SessionTokenCreate(RequestModel):
    customer: CustomerIn
    expires_in: int = Field(default=3600, ge=60, le=86400, description="Seconds, 60–86400.")


class SessionTokenRevoke(RequestModel):
    token: str = Field(min_length=1, max_length=200)


class SessionTokenOut(BaseModel):
    token: str
    expires_at: datetime
    customer: CustomerOut


class RevokedOut(BaseModel):
    revoked: bool
