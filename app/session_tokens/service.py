"""Session tokens: a merchant mints one for a customer, created on first sight."""

from __future__ import annotations

import uuid

from app.auth import issue_session_token
from app.customers.schemas import CustomerIn
from app.customers.service import upsert_customer
from app.db import db
from models import Customer, SessionToken


def create_session_token(
    organization_id: uuid.UUID, data: CustomerIn, expires_in: int
) -> tuple[str, SessionToken, Customer]:
    customer = upsert_customer(organization_id, data)
    token, row = issue_session_token(customer, expires_in)
    db.session.flush()
    return token, row, customer
