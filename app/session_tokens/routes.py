from __future__ import annotations

import uuid

from flask import Blueprint
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from app import rate_limit
from app.api import SECRET_KEY, json_response, operation
from app.auth import current_merchant, forget_revoked_token, revoke_session_token
from app.customers.service import customer_out
from app.db import db
from app.errors import ServiceUnavailable
from app.session_tokens import service
from app.session_tokens.schemas import (
    RevokedOut,
    RevokedTokenOut,
    SessionTokenCreate,
    SessionTokenOut,
    SessionTokenRevoke,
)
from models import SessionToken

bp = Blueprint("session_tokens", __name__)


@bp.post("/v1/session-tokens")
@operation(
    summary="Mint a session token for one of your users",
    description=(
        "Creates the customer on first sight of its `external_id`. Rate limited per "
        "organization (429 with `Retry-After`)."
    ),
    auth=SECRET_KEY,
    body=SessionTokenCreate,
    responses={201: SessionTokenOut},
    errors={429: "rate_limited"},
    tags=["session tokens"],
)
def create_session_token(body: SessionTokenCreate) -> ResponseReturnValue:
    organization_id = current_merchant().organization_id
    rate_limit.enforce(rate_limit.SESSION_TOKENS_PER_ORGANIZATION, str(organization_id))
    token, row, customer = service.create_session_token(
        organization_id, body.customer, body.expires_in
    )
    db.session.commit()
    out = SessionTokenOut(
        id=str(row.id), token=token, expires_at=row.expires_at, customer=customer_out(customer)
    )
    return json_response(out, 201)


@bp.post("/v1/session-tokens/revoke")
@operation(
    summary="Revoke a session token (e.g. when your user signs out)",
    auth=SECRET_KEY,
    body=SessionTokenRevoke,
    responses={200: RevokedOut},
    errors={503: "service_unavailable"},
    tags=["session tokens"],
)
def revoke(body: SessionTokenRevoke) -> ResponseReturnValue:
    row = revoke_session_token(current_merchant().organization_id, body.token)
    db.session.commit()
    if row is None:
        return json_response(RevokedOut(revoked=False))
    _evict(row)
    return json_response(RevokedOut(revoked=True))


@bp.delete("/v1/session-tokens/<uuid:token_id>")
@operation(
    summary="Revoke a session token by its id",
    description="Answers 200 with a JSON body (the node SDK parses every success as JSON).",
    auth=SECRET_KEY,
    responses={200: RevokedTokenOut},
    errors={404: "session_token_not_found", 503: "service_unavailable"},
    tags=["session tokens"],
)
def revoke_by_id(token_id: uuid.UUID) -> ResponseReturnValue:
    row = service.revoke_session_token_by_id(current_merchant().organization_id, token_id)
    db.session.commit()
    _evict(row)
    return json_response(RevokedTokenOut(id=str(row.id), revoked=True))


def _evict(row: SessionToken) -> None:
    try:
        forget_revoked_token(row)
    except RedisError:
        # The revocation is committed, but a cached principal could still let the token in
        # for a few minutes: ask the caller to retry, which re-writes the marker.
        raise ServiceUnavailable(
            "The token is revoked but could not yet be evicted from the cache; retry.",
            headers={"Retry-After": "1"},
        ) from None
