"""RFC 9457 problem details for every error the API can answer.

Services raise `ApiError` subclasses that carry their HTTP status and `code`; the handlers here
turn them, Werkzeug's HTTP errors and any unexpected exception into `application/problem+json`.
Nothing here ever puts a stack trace, SQL or a secret into a response.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from app.db import is_contention

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://billingos.dev/problems/"

_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Unauthenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    410: ("gone", "Gone"),
    411: ("length_required", "Length required"),
    412: ("precondition_failed", "Precondition failed"),
    413: ("payload_too_large", "Payload too large"),
    414: ("uri_too_long", "URI too long"),
    415: ("unsupported_media_type", "Unsupported media type"),
    416: ("range_not_satisfiable", "Range not satisfiable"),
    422: ("validation_error", "Validation error"),
    429: ("rate_limited", "Too many requests"),
    431: ("request_header_fields_too_large", "Request header fields too large"),
    500: ("internal_error", "Internal server error"),
    503: ("service_unavailable", "Service unavailable"),
}


class ApiError(Exception):
    """An error with its HTTP meaning; subclass it next to the service that raises it."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.errors = errors
        self.headers = headers or {}


class NotFound(ApiError):
    status = 404
    code = "not_found"
    title = "Not found"


class Unauthenticated(ApiError):
    status = 401
    code = "unauthenticated"
    title = "Unauthenticated"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Conflict(ApiError):
    status = 409
    code = "conflict"
    title = "Conflict"


class ValidationFailed(ApiError):
    status = 422
    code = "validation_error"
    title = "Validation error"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _from_api_error(error: ApiError) -> Response:
    return problem_response(
        error.status, error.code, error.title, error.detail, error.errors, error.headers
    )


def _from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    code, title = _HTTP_CODES.get(status, ("http_error", error.name))
    headers = {}
    if status == 405:
        allowed = getattr(error, "valid_methods", None) or []
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    # Werkzeug's descriptions are generic and safe; they never carry request data.
    return problem_response(status, code, title, error.description or title, headers=headers)


# Seconds a client should wait after losing a wait for a database lock.
CONTENTION_RETRY_AFTER_SECONDS = 1


def _from_database_error(error: DBAPIError) -> Response:
    """A lost wait for a lock (lock/statement timeout, deadlock) is "busy, retry", not a 500."""
    if not is_contention(error):
        return _from_unexpected(error)
    log.warning("request lost a database wait: %s", type(error.orig).__name__)
    return problem_response(
        503,
        "database_busy",
        "Service busy",
        "The data this request needs is being changed by another request; retry shortly.",
        headers={"Retry-After": str(CONTENTION_RETRY_AFTER_SECONDS)},
    )


def _from_unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    return problem_response(
        500, "internal_error", "Internal server error", "The server failed to handle the request."
    )


# Below gunicorn's request-line limit (8190 bytes with the method and HTTP version), so the app
# gets to answer an over-long URL itself, as a problem.
MAX_URL_BYTES = 8000


def register_request_guards(app: Flask) -> None:
    """Refuse, as problems, requests no route could serve safely.

    gunicorn's own limit answers an over-long request line with an HTML page; this one sits
    below it, so most over-long URLs get a problem+json answer instead. A NUL in
    the path could only end as a database error, since Postgres text cannot hold it.
    """

    @app.before_request
    def _guard() -> Response | None:
        if len(request.full_path) > MAX_URL_BYTES:
            return problem_response(414, "uri_too_long", "URI too long", "The URL is too long.")
        if "\x00" in request.path:
            return problem_response(404, "not_found", "Not found", "No such resource.")
        return None


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _from_api_error)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(DBAPIError, _from_database_error)
    app.register_error_handler(Exception, _from_unexpected)
