"""Session tokens in the SDK's dialect (`sessionToken`, `expiresAt`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api import json_response, parse_body
from app.customers.schemas import CustomerIn
from app.request_models import RequestModel
from app.session_tokens.schemas import SessionTokenCreate
from app.versions import SDK_2026_01_01, RouteTranslator, register


class SdkSessionTokenCreate(RequestModel):
    """`@billingos/node` `createSessionToken` (undefined fields are left out by JSON.stringify)."""

    externalUserId: str = Field(min_length=1, max_length=255)
    # Accepted and not used: a token is for one end user, whatever their organization is.
    externalOrganizationId: str | None = Field(default=None, max_length=255)
    expiresIn: int = Field(default=3600, ge=60, le=86400)
    allowedOperations: list[str] | None = Field(default=None, max_length=50)
    # Informational (IP address, user agent…); not stored.
    metadata: dict[str, Any] | None = None

    @field_validator("allowedOperations")
    @classmethod
    def no_scoping_yet(cls, value: list[str] | None) -> list[str] | None:
        # A token cannot be narrowed yet; minting a full token for a caller that asked for a
        # narrow one would widen what it can do, so it is refused.
        if value:
            raise ValueError("scoped session tokens (allowedOperations) are not supported yet")
        return value


class SdkSessionTokenOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    sessionToken: str
    expiresAt: datetime
    id: str


def _serve_session_token(handler: Callable[..., Any]) -> Response:
    body = parse_body(SdkSessionTokenCreate)
    assert isinstance(body, SdkSessionTokenCreate)
    ours = SessionTokenCreate(
        customer=CustomerIn(external_id=body.externalUserId), expires_in=body.expiresIn
    )
    response = handler(body=ours)
    created = json.loads(response.get_data())
    rendered = {
        "sessionToken": created["token"],
        "expiresAt": created["expires_at"],
        **created,
    }
    return json_response(rendered, response.status_code)


register(
    SDK_2026_01_01,
    "session_tokens.create_session_token",
    RouteTranslator(
        serve=_serve_session_token,
        body=SdkSessionTokenCreate,
        responses={201: SdkSessionTokenOut},
    ),
)
