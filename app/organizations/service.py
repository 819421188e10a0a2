"""Organizations (the merchants): creation, secret keys, and their API settings — the default
API version and the browser origins allowed to call the SDK routes."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flask import g, request
from sqlalchemy import exists, select
from sqlalchemy.exc import SQLAlchemyError

from app.api_keys import service as api_keys
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


# Read on every request that sends no version header or comes from a browser, so each process
# keeps them briefly instead of asking Postgres each time. A change made through this process is
# seen at once; other processes see it within this many seconds.
SETTINGS_TTL_SECONDS = 10.0
_MAX_CACHED = 10_000
_cache: dict[uuid.UUID, tuple[float, ApiSettings]] = {}


def api_settings(organization_id: uuid.UUID) -> ApiSettings | None:
    now = time.monotonic()
    cached = _cache.get(organization_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    settings = _load_api_settings(organization_id)
    if settings is not None:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        _cache[organization_id] = (now + SETTINGS_TTL_SECONDS, settings)
    return settings


def _load_api_settings(organization_id: uuid.UUID) -> ApiSettings | None:
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
    return organization


def forget_api_settings(organization_id: uuid.UUID) -> None:
    """After a committed change: this request and this process read the new settings."""
    request.environ.pop(_SETTINGS_KEY, None)
    _cache.pop(organization_id, None)


def create_organization(
    name: str, api_version: str, allowed_origins: tuple[str, ...] = ()
) -> tuple[Organization, str]:
    """A new organization and its first secret key (returned once; only its digest is stored)."""
    organization = Organization(
        name=name, api_version=api_version, allowed_origins=list(dict.fromkeys(allowed_origins))
    )
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
