from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from app.entitlements.schemas import EntitlementOut
from app.request_models import QueryModel, RequestModel
from app.subscriptions.schemas import SubscriptionOut

RETURN_URL_MAX_LENGTH = 2048
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,255}$"


def _valid_return_url(value: str | None) -> str | None:
    # The portal's "return to app" link: an absolute http(s) URL, nothing else (a
    # `javascript:` or relative URL would be a redirect we should not hand to Stripe).
    if value is None:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or any(c.isspace() for c in value):
        raise ValueError("return_url must be an absolute http or https URL")
    return value


class CustomerIn(RequestModel):
    external_id: str = Field(min_length=1, max_length=255, description="The merchant's user id.")
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    name: str | None = Field(default=None, max_length=255)


class CustomerOut(BaseModel):
    id: str
    external_id: str
    email: str | None
    name: str | None


class PortalSessionCreate(RequestModel):
    return_url: str | None = Field(
        default=None,
        max_length=RETURN_URL_MAX_LENGTH,
        description="Where the portal's back link goes (absolute http/https URL).",
    )

    _check_return_url = field_validator("return_url")(_valid_return_url)


class PortalSessionQuery(QueryModel):
    return_url: str | None = Field(default=None, max_length=RETURN_URL_MAX_LENGTH)

    _check_return_url = field_validator("return_url")(_valid_return_url)


class PortalSessionOut(BaseModel):
    url: str
    expires_at: datetime


class CustomerDetailOut(CustomerOut):
    """A customer as the merchant sees it: who, what they subscribe to, what they may use."""

    subscriptions: list[SubscriptionOut] = Field(
        description="The newest 100 subscriptions; page through all of them with "
        "`GET /v1/customers/{external_id}/subscriptions`."
    )
    subscriptions_has_more: bool
    entitlements: list[EntitlementOut]
