"""Session tokens: a merchant mints one for a customer, created on first sight."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.auth import issue_session_token
from app.customers.schemas import CustomerIn
from app.customers.service import upsert_customer
from app.db import db
from app.errors import NotFound
from models import Customer, SessionToken
from models.base import utcnow


class SessionTokenNotFound(NotFound):
    code = "session_token_not_found"
    title = "Session token not found"


def create_session_token(
    organization_id: uuid.UUID, data: CustomerIn, expires_in: int
) -> tuple[str, SessionToken, Customer]:
    customer = upsert_customer(organization_id, data)
    token, row = issue_session_token(customer, expires_in)
    db.session.flush()
    return token, row, customer


def revoke_session_token_by_id(organization_id: uuid.UUID, token_id: uuid.UUID) -> SessionToken:
    """Mark the organization's token revoked (idempotently); the caller commits, then evicts it."""
    row = db.session.execute(
        select(SessionToken).where(
            SessionToken.id == token_id, SessionToken.organization_id == organization_id
        )
    ).scalar_one_or_none()
    if row is None:
        raise SessionTokenNotFound("No such session token.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
