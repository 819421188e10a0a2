"""The merchant's own secret keys (`/v1/api-keys`)."""

from __future__ import annotations

import uuid

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

from app import settings_of
from app.api import SECRET_KEY, json_response, operation
from app.api_keys import service
from app.api_keys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    ApiKeyRotate,
    ApiKeyRotated,
    api_key_created,
    api_key_out,
)
from app.auth import current_merchant
from app.db import db
from app.pagination import ListQuery

bp = Blueprint("api_keys", __name__)


@bp.get("/v1/api-keys")
@operation(
    summary="List your secret keys (never the secrets), newest first",
    auth=SECRET_KEY,
    query=ListQuery,
    responses={200: ApiKeyList},
    tags=["api keys"],
)
def list_api_keys(query: ListQuery) -> ResponseReturnValue:
    rows, has_more = service.list_keys(current_merchant().organization_id, query)
    return json_response(ApiKeyList(data=[api_key_out(r) for r in rows], has_more=has_more))


@bp.post("/v1/api-keys")
@operation(
    summary="Create a secret key (the secret is in this response only)",
    auth=SECRET_KEY,
    body=ApiKeyCreate,
    responses={201: ApiKeyCreated},
    tags=["api keys"],
)
def create_api_key(body: ApiKeyCreate) -> ResponseReturnValue:
    secret, row = service.create_key(current_merchant().organization_id, body.name)
    db.session.commit()
    return json_response(api_key_created(row, secret), 201)


@bp.post("/v1/api-keys/<uuid:key_id>/revoke")
@operation(
    summary="Revoke a secret key: it stops working at once",
    auth=SECRET_KEY,
    responses={200: ApiKeyOut},
    errors={404: "api_key_not_found"},
    tags=["api keys"],
)
def revoke_api_key(key_id: uuid.UUID) -> ResponseReturnValue:
    row = service.revoke_key(current_merchant().organization_id, key_id)
    db.session.commit()
    return json_response(api_key_out(row))


@bp.post("/v1/api-keys/<uuid:key_id>/rotate")
@operation(
    summary="Rotate a secret key: a new key now, the old one until the overlap ends",
    description=(
        "The old key keeps working for `overlap_seconds` (default: the server's "
        "API_KEY_ROTATION_OVERLAP_SECONDS, 24 h) so every server can switch to the new one, "
        "then stops. 409 `api_key_not_rotatable` for a revoked or expired key."
    ),
    auth=SECRET_KEY,
    body=ApiKeyRotate,
    responses={201: ApiKeyRotated},
    errors={404: "api_key_not_found", 409: "api_key_not_rotatable"},
    tags=["api keys"],
)
def rotate_api_key(key_id: uuid.UUID, body: ApiKeyRotate) -> ResponseReturnValue:
    overlap = body.overlap_seconds
    if overlap is None:
        overlap = settings_of(current_app).api_key_rotation_overlap_seconds
    secret, new, old = service.rotate_key(current_merchant().organization_id, key_id, overlap)
    db.session.commit()
    out = ApiKeyRotated(new_key=api_key_created(new, secret), old_key=api_key_out(old))
    return json_response(out, 201)
