from __future__ import annotations

import re

import pytest

from app.request_models import RequestModel  # noqa: F401 — the base every body model derives from


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_checks_postgres_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"postgres": "ok", "redis": "ok"}


def test_readyz_is_503_when_redis_is_unreachable(app, client):
    import redis

    original = app.extensions["redis"]
    app.extensions["redis"] = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        response = client.get("/readyz")
    finally:
        app.extensions["redis"] = original
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"] == "unavailable"


def test_openapi_describes_every_documented_route(app, client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, methods in spec["paths"].items() for method in methods}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, "__openapi__", None) is None:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([A-Za-z_][A-Za-z0-9_]*)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented
    create = spec["paths"]["/v1/products"]["post"]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert body_schema["additionalProperties"] is False
    assert "422" in create["responses"] and "401" in create["responses"]
    # Any URL can be too long (found by schemathesis): every operation documents the 414.
    assert all(
        "414" in operation["responses"]
        for methods in spec["paths"].values()
        for operation in methods.values()
    )


def test_docs_render_without_internet(client):
    page = client.get("/docs")
    assert page.status_code == 200 and b"/openapi.json" in page.data
    asset = client.get("/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000


def test_metrics_are_prometheus_text_for_the_scraper(client, metrics_token):
    client.get("/healthz")
    response = client.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
    assert response.status_code == 200
    assert "billingos_http_requests_total" in response.get_data(as_text=True)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic c2NyYXBlLW1l"])
def test_metrics_refuse_anyone_without_the_token(client, metrics_token, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert "billingos_http" not in response.get_data(as_text=True)


def test_metrics_are_not_served_without_a_configured_token(client):
    response = client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404
