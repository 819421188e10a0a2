"""Operations: liveness, readiness, metrics, and the API's own documentation."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, current_app, request, send_from_directory
from flask.typing import ResponseReturnValue
from pydantic import BaseModel
from sqlalchemy import text

from app import settings_of
from app.api import PUBLIC, json_response, operation
from app.db import db
from app.errors import NotFound, Unauthenticated
from app.metrics import render_metrics
from app.openapi import build_openapi
from app.redis_client import get_redis
from app.versions import (
    BASE_VERSION,
    KNOWN_VERSIONS,
    UnknownVersion,
    current_version,
    unknown_version_message,
)

bp = Blueprint("ops", __name__)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@bp.get("/healthz")
@operation(summary="The process is up", auth=PUBLIC, responses={200: Health}, tags=["operations"])
def healthz() -> ResponseReturnValue:
    return json_response({"status": "ok"})


@bp.get("/readyz")
@operation(
    summary="Postgres and Redis are reachable",
    auth=PUBLIC,
    responses={200: Readiness, 503: Readiness},
    tags=["operations"],
)
def readyz() -> ResponseReturnValue:
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["postgres"] = "ok"
    except Exception:
        db.session.rollback()
        checks["postgres"] = "unavailable"
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception:
        checks["redis"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )


@bp.get("/metrics")
def metrics() -> Response:
    # Metrics name routes, task names and volumes: for the operator's scraper only. Without a
    # METRICS_TOKEN there is no way to tell the scraper from anyone else, so nothing is served.
    token = settings_of(current_app).metrics_token
    if token is None:
        raise NotFound("No such resource.")
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip(), token):
        raise Unauthenticated(
            "Send the METRICS_TOKEN as `Authorization: Bearer <token>`.",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return render_metrics()


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The document of `?version=`, else of the request's version (see app/versions)."""
    version = request.args.get("version") or current_version() or BASE_VERSION
    if version not in KNOWN_VERSIONS:
        raise UnknownVersion(unknown_version_message(version))
    documents = current_app.extensions.setdefault("openapi", {})
    spec: dict[str, Any] = documents.get(version) or build_openapi(current_app, version)
    documents[version] = spec
    return json_response(spec)


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>BillingOS API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="docs"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#docs", deepLinking: true});</script>
</body></html>"""


@bp.get("/docs")
def docs() -> Response:
    return Response(_DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str) -> Response:
    # Served from the swagger-ui-bundle wheel, so /docs works with no internet access.
    from swagger_ui_bundle import swagger_ui_path

    return send_from_directory(swagger_ui_path, filename, max_age=86400)
