"""Every error is application/problem+json, including the framework's own."""

from __future__ import annotations

import sys

import pytest
from flask import Blueprint

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def _assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status and body["code"] == code
    return body


def test_unknown_route_is_404(client):
    _assert_problem(client.get("/v1/nope"), 404, "not_found")


def test_malformed_uuid_in_path_is_404(client, merchant):
    _assert_problem(
        client.get("/v1/products/not-a-uuid", headers=merchant.headers), 404, "not_found"
    )


def test_wrong_method_is_405_with_allow(client):
    response = client.delete("/healthz")
    _assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_body_over_one_mebibyte_is_413(client, merchant):
    body = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post(
        "/v1/products", data=body, content_type="application/json", headers=merchant.headers
    )
    _assert_problem(response, 413, "payload_too_large")


def test_non_json_body_is_415(client, merchant):
    response = client.post(
        "/v1/products",
        data="name=x",
        content_type="application/x-www-form-urlencoded",
        headers=merchant.headers,
    )
    _assert_problem(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", b"[1, 2]", b'"text"', b"null"])
def test_malformed_or_non_object_json_is_a_clear_4xx(client, merchant, raw):
    response = client.post(
        "/v1/products", data=raw, content_type="application/json", headers=merchant.headers
    )
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


def test_unexpected_exception_is_a_500_problem_without_details(database_url, caplog):
    from app import create_app

    app = create_app()
    bp = Blueprint("boom", __name__)

    @bp.get("/_test/boom")
    def boom():
        raise RuntimeError("SELECT secret FROM somewhere; bos_sk_test_leak")

    app.register_blueprint(bp)
    with app.app_context():
        response = app.test_client().get("/_test/boom")
    body = _assert_problem(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "SELECT" not in text and "bos_sk_test_leak" not in text and "Traceback" not in text
    assert body["detail"] == "The server failed to handle the request."
    assert "unhandled error" in caplog.text


def test_nul_characters_in_a_body_are_422_not_a_database_error(client, merchant):
    response = client.post(
        "/v1/session-tokens",
        json={"customer": {"external_id": "user\u0000x"}},
        headers=merchant.headers,
    )
    body = _assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "customer", "external_id"]


def test_nul_characters_in_a_query_are_422(client, merchant):
    response = client.get("/v1/products?include_archived=tr%00ue", headers=merchant.headers)
    _assert_problem(response, 422, "validation_error")


def test_nul_characters_in_a_path_are_404(client, merchant):
    _assert_problem(client.get("/v1/customers/ab%00c", headers=merchant.headers), 404, "not_found")


def test_deeply_nested_json_is_400(client, merchant):
    response = client.post(
        "/v1/products",
        data="[" * 100_000,
        content_type="application/json",
        headers=merchant.headers,
    )
    _assert_problem(response, 400, "invalid_json")


def test_overlong_url_is_414_problem(client):
    _assert_problem(client.get("/healthz?x=" + "a" * 9000), 414, "uri_too_long")


def test_secrets_in_exception_texts_are_redacted_in_logs():
    import logging

    from app.logging_setup import RedactingFilter

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    try:
        raise ValueError("INSERT … client_secret pi_123_secret_abc token bos_st_SECRETTOKEN")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert handler.filter(record)
    text = handler.format(record)
    assert "Traceback" in text
    assert "pi_123_secret_abc" not in text and "bos_st_SECRETTOKEN" not in text
