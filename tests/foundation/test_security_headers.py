"""Every response carries the security headers; framing is refused unless a page allows it."""

from __future__ import annotations

import pytest
from flask import Flask, Response

from app.security_headers import allow_framing, register_security_headers


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/healthz", 200),
        ("/v1/products", 401),
        ("/nowhere", 404),
        ("/healthz?x=" + "a" * 9000, 414),
    ],
)
def test_every_response_carries_the_headers(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in response.headers


def test_hsts_only_over_tls(client):
    response = client.get("/healthz", base_url="https://billing.example")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_a_page_can_allow_framing_by_named_origins():
    app = Flask("framing")
    register_security_headers(app)

    @app.get("/embed")
    def embed() -> Response:
        return allow_framing(Response("<p>checkout</p>"), "https://shop.example")

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    framed = app.test_client().get("/embed")
    assert framed.headers["Content-Security-Policy"] == "frame-ancestors https://shop.example"
    assert "X-Frame-Options" not in framed.headers
    assert framed.headers["X-Content-Type-Options"] == "nosniff"
    assert app.test_client().get("/plain").headers["X-Frame-Options"] == "DENY"
