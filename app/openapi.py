"""`/openapi.json`, built from the routes' `operation` declarations and their pydantic models."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from flask import Flask
from pydantic import BaseModel

from app.api import Operation
from app.errors import PROBLEM_JSON
from app.versions import (
    BASE_VERSION,
    HEADER,
    KNOWN_VERSIONS,
    SDK_2026_01_01,
    SDK_ERROR_SCHEMA,
    RouteTranslator,
    translator_of,
)

_PARAM = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
_REF = "#/components/schemas/{model}"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}

_STANDARD_ERRORS = {
    400: "Malformed request",
    401: "Missing, invalid or expired credential",
    403: "Wrong kind of credential",
    404: "Not found",
    405: "Method not allowed",
    413: "Body over 1 MiB",
    414: "URL over 8 KiB",
    415: "Body is not JSON",
    422: "Validation error",
    429: "Rate limited",
    500: "Unexpected error",
}


class _Components:
    def __init__(self, version: str) -> None:
        self.version = version
        self.schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA, "SdkError": SDK_ERROR_SCHEMA}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        self.schemas.setdefault(model.__name__, schema)
        return {"$ref": _REF.format(model=model.__name__)}


def _problem(version: str, description: str, code: str | None = None) -> dict[str, Any]:
    if version == SDK_2026_01_01:
        content = {"application/json": {"schema": {"$ref": _REF.format(model="SdkError")}}}
    else:
        content = {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}}
    response: dict[str, Any] = {"description": description, "content": content}
    if code:
        response["description"] = f"{description} (`code`: `{code}`)"
    return response


def _parameters(rule_path: str, op: Operation, components: _Components) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for match in _PARAM.finditer(rule_path):
        schema: dict[str, Any] = {"type": "string"}
        if match.group("conv") == "uuid":
            schema["format"] = "uuid"
        params.append(
            {"name": match.group("name"), "in": "path", "required": True, "schema": schema}
        )
    if op.query is not None:
        query_schema = op.query.model_json_schema(ref_template=_REF, mode="validation")
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    return params


def _operation(
    rule_path: str, method: str, op: Operation, components: _Components
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": op.summary,
        "operationId": None,
        "tags": op.tags,
        "parameters": _parameters(rule_path, op, components),
        "responses": {},
    }
    if op.description:
        doc["description"] = op.description
    if op.auth == "secret_key":
        doc["security"] = [{"secretKey": []}]
    elif op.auth == "session_token":
        doc["security"] = [{"sessionToken": []}]
    elif op.auth == "any":
        doc["security"] = [{"secretKey": []}, {"sessionToken": []}]
    else:
        doc["security"] = []
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": components.ref(op.body, "validation")}},
        }
    for status, model in op.responses.items():
        entry: dict[str, Any] = {"description": "OK" if status < 300 else str(status)}
        if model is not None:
            entry["content"] = {
                "application/json": {"schema": components.ref(model, "serialization")}
            }
        doc["responses"][str(status)] = entry
    for status, extra in op.extra_responses.items():
        doc["responses"][str(status)] = _errors_in_version(extra, components.version)
    standard = {400, 404, 405, 413, 414, 500} if op.body is not None else {404, 405, 414, 500}
    if op.body is not None:
        standard |= {415, 422}
    if op.query is not None:
        standard.add(422)
    if op.auth is not None:
        standard |= {401, 403}
    errors = dict(op.errors)
    if components.version == SDK_2026_01_01:
        # The dialect answers validation errors as 400.
        standard = {400 if s == 422 else s for s in standard}
        errors = {400 if s == 422 else s: code for s, code in errors.items()}
    for status in sorted(standard | set(errors)):
        doc["responses"].setdefault(
            str(status),
            _problem(components.version, _STANDARD_ERRORS.get(status, "Error"), errors.get(status)),
        )
    return doc


def _errors_in_version(response: dict[str, Any], version: str) -> dict[str, Any]:
    """A hand-written response entry whose problem+json content the dialect renders as SdkError."""
    content = response.get("content", {})
    if version != SDK_2026_01_01 or PROBLEM_JSON not in content:
        return response
    sdk_error = {"schema": {"$ref": _REF.format(model="SdkError")}}
    return {**response, "content": {"application/json": sdk_error}}


def _in_version(op: Operation, translator: RouteTranslator | None) -> Operation:
    """The operation as a version with its own translator for the route serves it."""
    if translator is None:
        return op
    responses = dict(translator.responses or op.responses)
    description = op.description
    if translator.credential is not None:
        # Only that credential gets the translated shape; its `responses` document both.
        description = (
            f"{description or ''}\n\nWith a {translator.credential.replace('_', ' ')}, "
            "this version answers the shape documented here; other credentials get the "
            "route's usual body."
        ).strip()
    return replace(
        op,
        body=translator.body or op.body,
        query=translator.query or op.query,
        responses=responses,
        errors={**op.errors, **translator.errors},
        description=description,
    )


def build_openapi(app: Flask, version: str = BASE_VERSION) -> dict[str, Any]:
    components = _Components(version)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        op: Operation | None = getattr(view, "__openapi__", None)
        if op is None:
            continue
        path = _PARAM.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        op = _in_version(op, translator_of(version, rule.endpoint))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            entry = _operation(rule.rule, method, op, components)
            entry["operationId"] = f"{method.lower()}_{rule.endpoint.replace('.', '_')}"
            paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "BillingOS API",
            "version": version,
            "description": (
                "Products, in-app checkout, subscriptions and entitlements on Stripe.\n\n"
                f"This document describes API version `{version}` (known: "
                f"{', '.join(KNOWN_VERSIONS)}; `/openapi.json?version=…`). A request's version "
                f"is its `{HEADER}` header, else its organization's default; every response "
                f"carries the version it was rendered in in `{HEADER}`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "secretKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A merchant's secret key `bos_sk_test_…` (server side only).",
                },
                "sessionToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A customer's session token `bos_st_…` (the SDK).",
                },
            },
        },
    }
