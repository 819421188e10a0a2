"""The merchant's own organization: its default API version and allowed browser origins."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import SECRET_KEY, json_response, operation
from app.auth import current_merchant
from app.db import db
from app.organizations import service
from app.organizations.schemas import OrganizationOut, OrganizationUpdate
from models import Organization

bp = Blueprint("organizations", __name__)


def _out(organization: Organization) -> OrganizationOut:
    return OrganizationOut(
        id=str(organization.id),
        name=organization.name,
        api_version=organization.api_version,
        allowed_origins=list(organization.allowed_origins),
    )


@bp.get("/v1/organization")
@operation(
    summary="Your organization's API settings",
    auth=SECRET_KEY,
    responses={200: OrganizationOut},
    tags=["organization"],
)
def get_organization() -> ResponseReturnValue:
    return json_response(_out(service.get_organization(current_merchant().organization_id)))


@bp.patch("/v1/organization")
@operation(
    summary="Change the allowed browser origins or the default API version",
    description=(
        "`allowed_origins` replaces the list (send every origin the SDK runs on, e.g. "
        "`https://app.example.com`). Preflights may be cached by browsers for up to ten "
        "minutes."
    ),
    auth=SECRET_KEY,
    body=OrganizationUpdate,
    responses={200: OrganizationOut},
    errors={422: "validation_error"},
    tags=["organization"],
)
def update_organization(body: OrganizationUpdate) -> ResponseReturnValue:
    organization_id = current_merchant().organization_id
    organization = service.update_organization(organization_id, body.model_dump(exclude_none=True))
    db.session.commit()
    service.forget_api_settings(organization_id)
    return json_response(_out(organization))
