"""CORS for the routes a browser calls with a session token, per organization.

The React SDK runs on the merchant's own origin and calls us with an `Authorization` header, so
every call is preceded by a preflight — and a preflight carries no credential. So:

- A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) for a route a session
  token can reach is allowed when *some* organization allows the origin. Saying "yes" reveals
  nothing and grants nothing: the real request still has to bring a valid token.
- The real request is then checked against the organization of its credential: an origin that
  organization does not allow gets 403 `origin_not_allowed` before anything runs, and no CORS
  headers (so the page cannot read the answer either). A token leaked to another merchant's page
  is therefore useless there.
- Errors answered before a credential named an organization (401) carry CORS headers for an
  origin some organization allows, so the SDK can read "unauthorized" instead of a network error.
- Secret-key routes never answer CORS: a secret key must never be in a browser.

The origin is echoed back exactly (with `Vary: Origin`), never `*`, and no
`Access-Control-Allow-Credentials`: the SDK sends no cookies. Built on Werkzeug's CORS
properties of requests and responses.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request
from werkzeug.datastructures import HeaderSet
from werkzeug.exceptions import HTTPException

from app.errors import Forbidden
from app.organizations.service import origin_allowed_anywhere, request_api_settings

ALLOWED_HEADERS = ("Authorization", "Content-Type", "X-BillingOS-Version", "Idempotency-Key")
EXPOSED_HEADERS = ("X-BillingOS-Version", "ETag", "Retry-After", "Preference-Applied")
# Browsers cap it (Chrome: 2 h); ten minutes keeps an origin removed by a merchant from being
# pre-approved for long.
MAX_AGE_SECONDS = 600
# The credential kinds a browser may hold (see app/api.py).
_BROWSER_AUTH = ("session_token", "any")
_REFUSED_KEY = "billingos.origin_refused"


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"
    title = "Origin not allowed"


def is_browser_route(endpoint: str | None) -> bool:
    if endpoint is None:
        return False
    view = current_app.view_functions.get(endpoint)
    operation = getattr(view, "__openapi__", None)
    return operation is not None and operation.auth in _BROWSER_AUTH


def _cross_origin() -> str | None:
    origin = request.origin
    if not origin or origin == request.host_url.rstrip("/"):
        return None
    return origin


def check_origin() -> None:
    """After authentication: refuse an origin the credential's organization does not allow."""
    origin = _cross_origin()
    if origin is None or not is_browser_route(request.endpoint):
        return
    settings = request_api_settings()
    if settings is None or origin not in settings.allowed_origins:
        request.environ[_REFUSED_KEY] = True
        raise OriginNotAllowed(
            f"The origin {origin} is not allowed for this organization; add it to the "
            "organization's allowed origins."
        )


def _preflight() -> Response | None:
    origin = _cross_origin()
    method = request.access_control_request_method
    if request.method != "OPTIONS" or origin is None or not method:
        return None
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, _args = adapter.match(method=method)
    except HTTPException:
        return None  # no such route for that method: Flask's own answer, no CORS headers
    requested = {h.lower() for h in request.access_control_request_headers or ()}
    allowed = {h.lower() for h in ALLOWED_HEADERS}
    if (
        not is_browser_route(endpoint)
        or not requested <= allowed
        or not origin_allowed_anywhere(origin)
    ):
        return None
    response = Response(status=204)
    response.access_control_allow_origin = origin
    response.access_control_allow_methods = HeaderSet([method])
    response.access_control_allow_headers = HeaderSet(ALLOWED_HEADERS)
    response.access_control_max_age = MAX_AGE_SECONDS
    response.vary.add("Origin")
    return response


def _allowed_for_response(origin: str) -> bool:
    if request.environ.get(_REFUSED_KEY):
        return False
    settings = request_api_settings()
    if settings is not None:
        return origin in settings.allowed_origins
    return origin_allowed_anywhere(origin)


def init_cors(app: Flask) -> None:
    app.before_request(_preflight)

    @app.after_request
    def _cors_headers(response: Response) -> Response:
        origin = _cross_origin()
        if origin is None or request.method == "OPTIONS":
            return response
        if is_browser_route(request.endpoint) and _allowed_for_response(origin):
            response.access_control_allow_origin = origin
            response.access_control_expose_headers = HeaderSet(EXPOSED_HEADERS)
            response.vary.add("Origin")
        return response
