"""What schemathesis found: the stream routes' OpenAPI entries must match what they answer."""

from __future__ import annotations

import uuid


class TestWebsocketWithoutUpgrade:
    def test_a_plain_get_is_a_documented_400_problem(self, client, buyer) -> None:
        spec = client.get("/openapi.json").get_json()
        for path in (f"/v1/checkout/{uuid.uuid4()}/ws", "/v1/customer/ws"):
            response = client.get(path, headers=buyer.headers)
            assert response.status_code == 400
            assert response.mimetype == "application/problem+json"
            assert response.get_json()["code"] == "websocket_upgrade_required"
        for path in ("/v1/checkout/{checkout_id}/ws", "/v1/customer/ws"):
            documented = spec["paths"][path]["get"]["responses"]["400"]
            assert "application/problem+json" in documented["content"]
            assert "websocket_upgrade_required" in documented["description"]


class TestSseDeclaration:
    def test_the_event_stream_is_not_declared_as_one_string(self, client) -> None:
        spec = client.get("/openapi.json").get_json()
        ok = spec["paths"]["/v1/checkout/{checkout_id}/stream"]["get"]["responses"]["200"]
        assert list(ok["content"]) == ["text/event-stream"]
        assert ok["content"]["text/event-stream"].get("schema", {}) == {}
