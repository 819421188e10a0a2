"""API versions, Stripe-style: one service layer, rendered at the HTTP edge in a request's version.

A request's version is its `X-BillingOS-Version` header, else its organization's default
(`organizations.api_version`), known once the credential named the organization. Every response
says which version it was rendered in (same header).

- `2026-11-27` is the contract of docs/api.md: snake_case bodies, RFC 9457 problems.
- `2026-01-01` is the dialect the existing SDKs (`@billingos/sdk`, `@billingos/node`) speak:
  camelCase bodies on the routes they call, errors as `{"error": {"message", "code",
  "details"}}` served as `application/json` (the React SDK parses a body only when its content
  type contains `application/json`, and maps 400 — not 422 — to a validation error). Its
  translators are in `app/versions/sdk_2026_01_01.py`; a route without one renders the same
  body in both versions.

An error answered before any organization is known (a missing or invalid credential) and without
a header is rendered in `2026-11-27`, with the dialect's `error` member added (an RFC 9457
extension member) so that a client of either version reads its message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, g, request
from pydantic import BaseModel

from app.errors import PROBLEM_JSON, ApiError, problem_response
from app.organizations.service import request_api_settings

HEADER = "X-BillingOS-Version"
SDK_2026_01_01 = "2026-01-01"
V2026_11_27 = "2026-11-27"
KNOWN_VERSIONS = (SDK_2026_01_01, V2026_11_27)
# What a response is rendered in when nothing says otherwise (no header, no organization).
BASE_VERSION = V2026_11_27
# Organizations created from now on: the node SDK sends no header, so it gets its dialect.
NEW_ORGANIZATION_VERSION = SDK_2026_01_01

# In the dialect, request validation errors are 400 (what both SDKs map to a validation error).
_DIALECT_STATUS = {422: 400}


class UnknownVersion(ApiError):
    status = 400
    code = "unknown_api_version"
    title = "Unknown API version"


def unknown_version_message(value: str) -> str:
    return f"Unknown API version {value!r}; known versions: {', '.join(KNOWN_VERSIONS)}."


def _header_version() -> str | None:
    value = request.headers.get(HEADER)
    return value.strip() if value is not None else None


def current_version() -> str | None:
    """The version this request is rendered in; None while no header and no organization."""
    header = _header_version()
    if header is not None:
        return header if header in KNOWN_VERSIONS else None
    settings = request_api_settings()
    return settings.api_version if settings is not None else None


# ------------------------------------------------------------------------- route translators


@dataclass(frozen=True)
class RouteTranslator:
    """How one route is served in one version other than 2026-11-27.

    `serve(handler)` parses the request as that version sends it, calls the route's handler
    (`handler(body=…, query=…)`, the same function 2026-11-27 runs) or the services it calls,
    and renders the answer in that version.
    """

    serve: Callable[[Callable[..., Any]], Response]
    # Only for this kind of credential (e.g. the SDK's session token on a route a merchant's
    # secret key also reaches); None: every request of the version.
    credential: str | None = None
    # What /openapi.json?version=… documents instead of the route's own models.
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)


_TRANSLATORS: dict[tuple[str, str], RouteTranslator] = {}


def register(version: str, endpoint: str, translator: RouteTranslator) -> None:
    """Serve the route `endpoint` (Flask's `blueprint.function`) in `version` by `translator`."""
    _TRANSLATORS[(version, endpoint)] = translator


def translator_of(version: str, endpoint: str) -> RouteTranslator | None:
    return _TRANSLATORS.get((version, endpoint))


def translator_for(endpoint: str | None) -> RouteTranslator | None:
    """The current request's translator, if its version renders this route differently."""
    if endpoint is None or not _TRANSLATORS:
        return None
    version = current_version()
    if version is None:
        return None
    translator = _TRANSLATORS.get((version, endpoint))
    if translator is None or not _applies(translator):
        return None
    return translator


def _applies(translator: RouteTranslator) -> bool:
    if translator.credential is None:
        return True
    principal_of = {"session_token": "customer", "secret_key": "merchant"}[translator.credential]
    return g.get(principal_of) is not None


# ------------------------------------------------------------------------- errors, headers


SDK_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "code"],
            "properties": {
                "message": {"type": "string"},
                "code": {"type": "string"},
                "details": {},
            },
        }
    },
}


def sdk_error_body(message: str, code: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "code": code, "details": details}}


def _render_problem(response: Response, version: str | None) -> Response:
    if version == V2026_11_27:
        return response
    try:
        problem = json.loads(response.get_data())
    except ValueError:
        return response
    error = sdk_error_body(problem["detail"], problem["code"], problem.get("errors"))
    if version is None:
        body = json.dumps({**problem, **error})
        response.set_data(body)
        return response
    status = _DIALECT_STATUS.get(response.status_code, response.status_code)
    rendered = Response(json.dumps(error), status=status, mimetype="application/json")
    for name, value in response.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            rendered.headers[name] = value
    return rendered


def init_versions(app: Flask) -> None:
    from app.versions import sdk_2026_01_01  # noqa: F401  (registers its translators)

    @app.before_request
    def _known_version() -> Response | None:
        header = _header_version()
        if header is None or header in KNOWN_VERSIONS:
            return None
        error = UnknownVersion(unknown_version_message(header))
        return problem_response(error.status, error.code, error.title, error.detail)

    @app.after_request
    def _render_in_version(response: Response) -> Response:
        version = current_version()
        if response.mimetype == PROBLEM_JSON:
            response = _render_problem(response, version)
        response.headers[HEADER] = version or BASE_VERSION
        # A cached body (ETag revalidation) must not be reused across versions.
        response.vary.add(HEADER)
        return response
