"""Organizations (the merchants): creation and secret keys. The admin CLI is the only caller."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.api_keys import service as api_keys
from app.db import db
from models import Organization


def create_organization(name: str) -> tuple[Organization, str]:
    """A new organization and its first secret key (returned once; only its digest is stored)."""
    organization = Organization(name=name)
    db.session.add(organization)
    db.session.flush()
    secret_key = issue_secret_key(organization.id)
    return organization, secret_key


def issue_secret_key(organization_id: uuid.UUID) -> str:
    secret_key, _row = api_keys.create_key(organization_id)
    return secret_key


def organization_named(name: str) -> Organization | None:
    """An organization with this name, if any (names are not unique: any one of them)."""
    return db.session.execute(
        select(Organization).where(Organization.name == name).limit(1)
    ).scalar_one_or_none()
