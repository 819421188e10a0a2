"""An organization's API settings: its default API version and the browser origins it allows."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from flask import g, request
from sqlalchemy import exists, select
from sqlalchemy.exc import SQLAlchemyError

from app.db import db
from app.errors import NotFound
from models import Organization

log = logging.getLogger(__name__)


class OrganizationNotFound(NotFound):
    code = "organization_not_found"
    title = "Organization not found"


_SETTINGS_KEY = "billingos.api_settings"


@dataclass(frozen=True)
class ApiSettings:
    api_version: str
    allowed_origins: tuple[str, ...]


def api_settings(organization_id: uuid.UUID) -> ApiSettings | None:
    row = db.session.execute(
        select(Organization.api_version, Organization.allowed_origins).where(
            Organization.id == organization_id
        )
    ).first()
    if row is None:
        return None
    return ApiSettings(api_version=row.api_version, allowed_origins=tuple(row.allowed_origins))


def request_api_settings() -> ApiSettings | None:
    """The settings of the organization the request's credential belongs to (once per request).

    None before authentication, or when Postgres cannot answer: the response is then rendered
    as if no organization were known, rather than failing a second time.
    """
    # Kept in the request's environ, not `g`: an app context can outlive one request.
    if _SETTINGS_KEY in request.environ:
        cached: ApiSettings | None = request.environ[_SETTINGS_KEY]
        return cached
    organization_id = g.get("organization_id")
    if organization_id is None:
        return None
    try:
        settings = api_settings(organization_id)
    except SQLAlchemyError:
        log.warning("organization settings unavailable")
        db.session.rollback()
        settings = None
    request.environ[_SETTINGS_KEY] = settings
    return settings


def origin_allowed_anywhere(origin: str) -> bool:
    """Whether any organization allows this browser origin (the GIN index answers it)."""
    return bool(
        db.session.execute(
            select(exists().where(Organization.allowed_origins.contains([origin])))
        ).scalar()
    )


def get_organization(organization_id: uuid.UUID) -> Organization:
    organization = db.session.get(Organization, organization_id)
    if organization is None:
        raise OrganizationNotFound("No such organization.")
    return organization


def update_organization(organization_id: uuid.UUID, changes: dict[str, Any]) -> Organization:
    organization = get_organization(organization_id)
    if "allowed_origins" in changes:
        # Order kept, duplicates dropped: the list is shown back to the merchant as sent.
        organization.allowed_origins = list(dict.fromkeys(changes["allowed_origins"]))
    if "api_version" in changes:
        organization.api_version = changes["api_version"]
    request.environ.pop(_SETTINGS_KEY, None)
    return organization
