from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from app.auth import issue_session_token
from app.db import db
from app.errors import NotFound
from app.session_tokens.schemas import CustomerIn, CustomerOut
from models import Customer, SessionToken
from models.base import utcnow


class SessionTokenNotFound(NotFound):
    code = "session_token_not_found"
    title = "Session token not found"


def upsert_customer(organization_id: uuid.UUID, data: CustomerIn) -> Customer:
    """The customer with this `external_id`, created on first sight; email/name refreshed."""
    stmt = insert(Customer).values(
        id=uuid.uuid4(),
        organization_id=organization_id,
        external_id=data.external_id,
        email=data.email,
        name=data.name,
    )
    update: dict[str, Any] = {"updated_at": func.now()}
    if data.email is not None:
        update["email"] = stmt.excluded.email
    if data.name is not None:
        update["name"] = stmt.excluded.name
    customer_id = db.session.execute(
        stmt.on_conflict_do_update(
            constraint="uq_customers_organization_id_external_id", set_=update
        ).returning(Customer.id)
    ).scalar_one()
    customer = db.session.execute(
        select(Customer).where(Customer.id == customer_id).execution_options(populate_existing=True)
    ).scalar_one()
    return customer


def create_session_token(
    organization_id: uuid.UUID, data: CustomerIn, expires_in: int
) -> tuple[str, SessionToken, Customer]:
    customer = upsert_customer(organization_id, data)
    token, row = issue_session_token(customer, expires_in)
    db.session.flush()
    return token, row, customer


def customer_out(customer: Customer) -> CustomerOut:
    return CustomerOut(
        id=str(customer.id),
        external_id=customer.external_id,
        email=customer.email,
        name=customer.name,
    )


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
