"""`/demo`: what a merchant's app looks like with BillingOS (development only).

A pricing table from the SDK routes, the hosted checkout in a modal iframe speaking the
postMessage protocol, and the buyer's subscriptions and entitlements updating live over the
customer websocket. The one thing a real merchant's *server* would do — mint a session token
for its signed-in user — is the demo-only `POST /demo/session`, which exists only when
BILLINGOS_ENV=development and only for the demo organization (`flask billingos seed-demo`).
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template
from flask.typing import ResponseReturnValue
from pydantic import Field
from sqlalchemy import select

from app import settings_of
from app.api import PUBLIC, json_response, operation
from app.cli import DEMO_ORGANIZATION
from app.db import db
from app.errors import NotFound
from app.request_models import RequestModel
from app.session_tokens import service as session_tokens
from app.session_tokens.schemas import CustomerIn
from models import Organization

bp = Blueprint(
    "demo",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/demo/static",
)

DEMO_TOKEN_SECONDS = 3600


class DemoSession(RequestModel):
    externalId: str = Field(default="demo_user", pattern=r"^[A-Za-z0-9_.-]{1,64}$")


@bp.get("/demo")
def demo_page() -> ResponseReturnValue:
    return render_template("demo/index.html")


@bp.post("/demo/session")
@operation(
    summary="Demo only: a session token for a buyer of the demo organization",
    description="Served only when BILLINGOS_ENV=development; a merchant's server does this.",
    auth=PUBLIC,
    body=DemoSession,
    responses={201: None},
    errors={404: "not_found"},
    tags=["demo"],
)
def demo_session(body: DemoSession) -> ResponseReturnValue:
    organization = db.session.execute(
        select(Organization).where(Organization.name == DEMO_ORGANIZATION).limit(1)
    ).scalar_one_or_none()
    if organization is None:
        raise NotFound("No demo organization: run `flask billingos seed-demo` (make run does).")
    token, row, customer = session_tokens.create_session_token(
        organization.id,
        CustomerIn(external_id=body.externalId, email=f"{body.externalId}@example.com"),
        DEMO_TOKEN_SECONDS,
    )
    db.session.commit()
    return json_response(
        {"token": token, "expiresAt": row.expires_at.isoformat(), "customerId": str(customer.id)},
        201,
    )


def register_demo(app: Flask) -> None:
    """Only a development server has the demo: it hands out tokens to anyone who asks."""
    if settings_of(app).env == "development":
        app.register_blueprint(bp)
