"""The billing portal calls Stripe on every request: limited per customer, 429 + Retry-After."""

from __future__ import annotations

from app.rate_limit import PORTAL_PER_CUSTOMER, rule
from tests.factories import make_buyer


def test_portal_sessions_are_rate_limited_per_customer(client, merchant, buyer) -> None:
    statuses = []
    limit = rule(PORTAL_PER_CUSTOMER)
    # GET and POST count together; a customer Stripe does not know answers 409 without a
    # Stripe call, and still counts. A window may roll over once during the burst.
    for n in range(2 * limit.amount + 1):
        if n % 2:
            response = client.get("/v1/portal-session", headers=buyer.headers)
        else:
            response = client.post("/v1/portal-session", json={}, headers=buyer.headers)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429
    assert set(statuses[:-1]) == {409}
    assert response.get_json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= limit.get_expiry()
    other = make_buyer(merchant, external_id="user_other")
    assert client.post("/v1/portal-session", json={}, headers=other.headers).status_code == 409


def test_the_limit_is_documented(client) -> None:
    spec = client.get("/openapi.json").get_json()
    for method in ("get", "post"):
        assert "429" in spec["paths"]["/v1/portal-session"][method]["responses"]
    assert "429" in spec["paths"]["/v1/customer/subscription/create"]["post"]["responses"]
