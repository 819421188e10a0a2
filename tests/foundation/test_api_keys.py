"""A merchant's secret keys: list, create, revoke, rotate with an overlap window; last use."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app import auth
from app.auth import resolve_secret_key
from app.db import db
from app.errors import Unauthenticated
from models import ApiKey
from models.base import utcnow
from tests.factories import Merchant, make_merchant


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _works(client: Any, secret: str) -> bool:
    status: int = client.get("/v1/api-keys", headers=_bearer(secret)).status_code
    assert status in (200, 401)
    return status == 200


def _create(client: Any, merchant: Merchant, name: str = "web") -> dict[str, Any]:
    response = client.post("/v1/api-keys", json={"name": name}, headers=merchant.headers)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_a_new_key_works_and_its_secret_is_shown_only_once(client, merchant):
    created = _create(client, merchant)
    assert created["status"] == "active" and created["name"] == "web"
    assert created["secret"].startswith(created["prefix"])
    assert _works(client, created["secret"])
    listed = client.get("/v1/api-keys", headers=merchant.headers).get_json()
    assert listed["data"][0]["id"] == created["id"]
    assert len(listed["data"]) == 2 and listed["has_more"] is False
    assert all("secret" not in k for k in listed["data"])
    assert created["secret"] not in json.dumps(listed)


def test_a_revoked_key_stops_at_once(client, merchant):
    created = _create(client, merchant)
    response = client.post(f"/v1/api-keys/{created['id']}/revoke", headers=merchant.headers)
    assert response.status_code == 200 and response.get_json()["status"] == "revoked"
    assert not _works(client, created["secret"])
    assert _works(client, merchant.secret_key)


def test_rotation_keeps_the_old_key_working_until_the_overlap_ends(client, merchant):
    old = _create(client, merchant)
    response = client.post(
        f"/v1/api-keys/{old['id']}/rotate", json={"overlap_seconds": 3600}, headers=merchant.headers
    )
    assert response.status_code == 201
    body = response.get_json()
    new_secret = body["new_key"]["secret"]
    assert body["new_key"]["name"] == "web" and body["old_key"]["status"] == "rotating"
    assert _works(client, new_secret) and _works(client, old["secret"])
    # After the window, only the new key works.
    later = utcnow() + timedelta(seconds=3601)
    with pytest.raises(Unauthenticated):
        resolve_secret_key(old["secret"], now=later)
    assert resolve_secret_key(new_secret, now=later).organization_id == merchant.id


def test_rotation_without_overlap_stops_the_old_key_now(app, client, merchant):
    old = _create(client, merchant)
    url = f"/v1/api-keys/{old['id']}/rotate"
    assert (
        client.post(url, json={"overlap_seconds": 0}, headers=merchant.headers).status_code == 201
    )
    assert not _works(client, old["secret"])
    again = client.post(url, json={}, headers=merchant.headers)
    assert again.status_code == 409
    assert again.get_json()["code"] == "api_key_not_rotatable"


def test_the_default_overlap_is_the_setting(app, client, merchant):
    old = _create(client, merchant)
    before = utcnow()
    client.post(f"/v1/api-keys/{old['id']}/rotate", json={}, headers=merchant.headers)
    row = db.session.get(ApiKey, old["id"])
    window = app.config["BILLINGOS"].api_key_rotation_overlap_seconds
    assert row.expires_at - before == pytest.approx(timedelta(seconds=window), abs=timedelta(5))


def test_another_organizations_key_is_not_found(client, merchant):
    theirs = _create(client, make_merchant("Other"), "theirs")
    for action in ("revoke", "rotate"):
        response = client.post(
            f"/v1/api-keys/{theirs['id']}/{action}", json={}, headers=merchant.headers
        )
        assert response.status_code == 404
        assert response.get_json()["code"] == "api_key_not_found"
    assert _works(client, theirs["secret"])


def _last_used(key_id: str) -> Any:
    db.session.remove()
    return db.session.execute(select(ApiKey.last_used_at).where(ApiKey.id == key_id)).scalar()


def test_last_use_is_recorded_without_a_write_per_request(client, merchant, redis_client):
    created = _create(client, merchant)
    assert _last_used(created["id"]) is None
    assert _works(client, created["secret"])
    first = _last_used(created["id"])
    assert first is not None
    for _ in range(3):
        assert _works(client, created["secret"])
    assert _last_used(created["id"]) == first
    # Once the interval has passed (here: its markers are gone), the next use is recorded.
    auth._last_noted.clear()
    redis_client.delete(f"bos:auth:key-used:{created['id']}")
    assert _works(client, created["secret"])
    assert _last_used(created["id"]) > first
    listed = client.get("/v1/api-keys", headers=merchant.headers).get_json()["data"]
    assert next(k for k in listed if k["id"] == created["id"])["last_used_at"] is not None


def test_the_cli_manages_keys(app, merchant):
    runner = app.test_cli_runner()
    org = ["--organization", str(merchant.id)]

    def run(*args: str) -> str:
        result = runner.invoke(args=["billingos", "api-keys", *args])
        assert result.exit_code == 0, result.output
        output: str = result.output
        return output

    created = json.loads(run("create", *org, "--name", "cron", "--json"))
    assert resolve_secret_key(created["secret"]).organization_id == merchant.id
    listed = [json.loads(line) for line in run("list", *org, "--json").splitlines()]
    assert created["id"] in {k["id"] for k in listed}
    rotated = json.loads(run("rotate", created["id"], *org, "--overlap-seconds", "60", "--json"))
    assert rotated["old_key_expires_at"] is not None
    resolve_secret_key(created["secret"])  # still inside the overlap
    assert "revoked" in run("revoke", rotated["id"], *org)
    db.session.remove()
    with pytest.raises(Unauthenticated):
        resolve_secret_key(rotated["secret"])


def test_the_routes_are_documented(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {"get", "post"} <= set(paths["/v1/api-keys"])
    assert "post" in paths["/v1/api-keys/{key_id}/rotate"]
    assert "post" in paths["/v1/api-keys/{key_id}/revoke"]
