"""Declaring an HTTP operation once: authentication, request validation and its OpenAPI entry.

    @bp.post("/v1/products")
    @operation(auth=SECRET_KEY, body=ProductCreate, responses={201: ProductOut}, tags=["catalog"])
    def create_product(body: ProductCreate) -> ResponseReturnValue: ...

The same pydantic models validate the request and describe it in `/openapi.json`, so the
document cannot drift from what the server accepts.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from flask import Response, request
from pydantic import BaseModel, ValidationError

from app.auth import AUTHENTICATORS
from app.cors import check_origin
from app.errors import ApiError, ValidationFailed
from app.versions import translator_for

F = TypeVar("F", bound=Callable[..., Any])

# Credential kinds an operation accepts: a merchant's secret key, a customer's session token
# (both `Authorization: Bearer …`), either, or none.
SECRET_KEY = "secret_key"
SESSION_TOKEN = "session_token"
ANY_CREDENTIAL = "any"
PUBLIC = None


@dataclass
class Operation:
    summary: str
    auth: str | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: dict[int, type[BaseModel] | None]
    tags: list[str]
    errors: dict[int, str] = field(default_factory=dict)
    description: str | None = None
    extra_responses: dict[int, dict[str, Any]] = field(default_factory=dict)


def _error_location(prefix: str, loc: tuple[Any, ...]) -> list[Any]:
    return [prefix, *loc]


def validation_errors(prefix: str, error: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": _error_location(prefix, tuple(e["loc"])), "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_input=False, include_context=False)
    ]


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class MalformedJson(ApiError):
    status = 400
    code = "invalid_json"
    title = "Malformed JSON"


def _find_nul(value: Any, loc: list[Any]) -> list[Any] | None:
    if isinstance(value, str):
        return loc if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_nul(key, [*loc, key]) or _find_nul(item, [*loc, key])
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_nul(item, [*loc, index])
            if found:
                return found
    return None


def _reject_nul(prefix: str, payload: Any) -> None:
    # Postgres text cannot hold NUL; refusing it here keeps it from ever reaching a query.
    loc = _find_nul(payload, [prefix])
    if loc is not None:
        raise ValidationFailed(
            "Strings must not contain NUL characters.",
            errors=[{"loc": loc, "msg": "String contains a NUL character", "type": "string_nul"}],
        )


def parse_body(model: type[BaseModel]) -> BaseModel:
    raw = request.get_data(cache=True)
    if not raw.strip():
        payload: Any = {}
    else:
        if not request.is_json:
            raise UnsupportedMediaType("Send the request body as application/json.")
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedJson("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise ValidationFailed(
            "The request body must be a JSON object.",
            errors=[{"loc": ["body"], "msg": "Input should be an object", "type": "dict_type"}],
        )
    _reject_nul("body", payload)
    try:
        return model.model_validate(payload)
    except ValidationError as e:
        raise ValidationFailed(
            "The request body is not valid.", errors=validation_errors("body", e)
        ) from None


def parse_query(model: type[BaseModel]) -> BaseModel:
    values: dict[str, Any] = {}
    for key in request.args:
        items = request.args.getlist(key)
        values[key] = items[0] if len(items) == 1 else items
    _reject_nul("query", values)
    try:
        return model.model_validate(values)
    except ValidationError as e:
        raise ValidationFailed(
            "The query string is not valid.", errors=validation_errors("query", e)
        ) from None


def operation(
    *,
    summary: str,
    auth: str | None,
    responses: dict[int, type[BaseModel] | None],
    tags: list[str],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    errors: dict[int, str] | None = None,
    description: str | None = None,
    extra_responses: dict[int, dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Authenticate, validate `body`/`query` into keyword arguments, and document the route."""
    op = Operation(
        summary=summary,
        auth=auth,
        body=body,
        query=query,
        responses=responses,
        tags=tags,
        errors=errors or {},
        description=description,
        extra_responses=extra_responses or {},
    )
    authenticate = AUTHENTICATORS[auth] if auth is not None else None

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if authenticate is not None:
                authenticate()
                check_origin()
            translator = translator_for(request.endpoint)
            if translator is not None:
                return translator.serve(functools.partial(fn, *args, **kwargs))
            if query is not None:
                kwargs["query"] = parse_query(query)
            if body is not None:
                kwargs["body"] = parse_body(body)
            return fn(*args, **kwargs)

        wrapper.__openapi__ = op  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json()
    else:
        body = json.dumps(payload, separators=(",", ":"), default=str)
    response = Response(body, status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
