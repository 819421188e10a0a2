"""Merchants' secret keys: create, list, revoke, and rotate with an overlap window.

Rotation mints a new key and gives the old one an `expires_at` instead of revoking it, so a
merchant can roll the new key out to every server while the old one still works; after the
window the old key stops. Revocation is immediate. The secret is shown once, at creation; only
its digest and first characters are stored.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from app.auth import digest, generate_secret_key
from app.db import db
from app.errors import Conflict, NotFound
from app.pagination import ListQuery, paginate
from models import ApiKey
from models.base import utcnow

# Enough of the key to tell keys apart in a list, far too little to guess the rest.
DISPLAY_PREFIX_LENGTH = 16


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    title = "API key not found"


class ApiKeyNotRotatable(Conflict):
    code = "api_key_not_rotatable"
    title = "API key cannot be rotated"


def create_key(
    organization_id: uuid.UUID, name: str | None = None, now: datetime | None = None
) -> tuple[str, ApiKey]:
    """A new key for the organization: (the secret, shown only now; its row). Caller commits."""
    secret = generate_secret_key()
    row = ApiKey(
        organization_id=organization_id,
        key_hash=digest(secret),
        key_prefix=secret[:DISPLAY_PREFIX_LENGTH],
        name=name,
        created_at=now or utcnow(),
    )
    db.session.add(row)
    db.session.flush()
    return secret, row


def list_keys(organization_id: uuid.UUID, query: ListQuery) -> tuple[list[ApiKey], bool]:
    stmt = select(ApiKey).where(ApiKey.organization_id == organization_id)
    return paginate(stmt, ApiKey, query, organization_id)


def get_key(organization_id: uuid.UUID, key_id: uuid.UUID, *, lock: bool = False) -> ApiKey:
    stmt = select(ApiKey).where(ApiKey.id == key_id, ApiKey.organization_id == organization_id)
    if lock:
        stmt = stmt.with_for_update()
    row = db.session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise ApiKeyNotFound("No such API key.")
    return row


def revoke_key(organization_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    """Stop the key now (idempotent). Caller commits."""
    row = get_key(organization_id, key_id, lock=True)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def rotate_key(
    organization_id: uuid.UUID, key_id: uuid.UUID, overlap_seconds: int
) -> tuple[str, ApiKey, ApiKey]:
    """A new key; the old one keeps working for `overlap_seconds`, then stops.

    Returns (the new secret, the new row, the old row). Rotating a key that is already
    rotating only shortens its window, never lengthens it. Caller commits.
    """
    old = get_key(organization_id, key_id, lock=True)
    now = utcnow()
    if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
        raise ApiKeyNotRotatable("This key no longer works; create a new key instead.")
    ends = now + timedelta(seconds=overlap_seconds)
    old.expires_at = ends if old.expires_at is None else min(old.expires_at, ends)
    secret, new = create_key(organization_id, old.name, now)
    return secret, new, old


def key_status(row: ApiKey, now: datetime | None = None) -> str:
    now = now or utcnow()
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None:
        return "expired" if row.expires_at <= now else "rotating"
    return "active"
