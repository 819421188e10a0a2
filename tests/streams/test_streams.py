"""Websocket and SSE status streams against a real gunicorn server with a gevent worker.

The checkout changes are real committed transactions made from the test process through
`CheckoutSession.transition()`, published by the after-commit hook, carried by the real Redis to
the server's subscriber and on to the clients.
"""

from __future__ import annotations

import pytest
import requests

from tests.factories import make_buyer
from tests.streams.clients import EventStream, StatusSocket
from tests.streams.conftest import advance

LIFECYCLE = ["pending", "open", "processing", "succeeded"]


def _ws(server, checkout_id, buyer, *, via_query: bool = False) -> StatusSocket:
    url = f"{server.ws_url}/v1/checkout/{checkout_id}/ws"
    if via_query:
        return StatusSocket(f"{url}?token={buyer.token}")
    return StatusSocket(url, headers=buyer.headers)


def _sse(server, checkout_id, buyer, *, via_query: bool = False) -> EventStream:
    url = f"{server.url}/v1/checkout/{checkout_id}/stream"
    if via_query:
        return EventStream(f"{url}?token={buyer.token}")
    return EventStream(url, headers=buyer.headers)


class TestCheckoutWebsocket:
    def test_snapshot_first_then_each_change_in_order_then_close_1000(
        self, web_server, make_checkout, buyer
    ) -> None:
        checkout = make_checkout()
        client = _ws(web_server, checkout.id, buyer)

        snapshot = client.next_frame()
        assert snapshot is not None
        assert snapshot["type"] == "checkout.updated"
        assert (snapshot["data"]["id"], snapshot["data"]["status"]) == (str(checkout.id), "pending")

        advance(checkout.id, "open", client_secret="pi_1_secret_x", intent_type="payment")
        client.until_status("open")
        advance(checkout.id, "processing")
        client.until_status("processing")
        advance(checkout.id, "succeeded")
        frames = client.until_closed()

        assert [f["data"]["status"] for f in frames] == [
            "pending",
            "open",
            "processing",
            "succeeded",
        ]
        assert [f["data"]["version"] for f in frames] == [1, 2, 3, 4]
        assert frames[1]["data"]["client_secret"] == "pi_1_secret_x"
        assert client.close_code == 1000

    def test_a_client_connecting_after_success_gets_the_final_snapshot_and_a_clean_close(
        self, web_server, make_checkout, buyer
    ) -> None:
        checkout = make_checkout(status="processing")
        advance(checkout.id, "succeeded")

        client = _ws(web_server, checkout.id, buyer, via_query=True)
        frames = client.until_closed()

        assert [(f["data"]["status"], f["data"]["version"]) for f in frames] == [("succeeded", 2)]
        assert client.close_code == 1000

    def test_another_customers_checkout_is_refused_with_4401(
        self, web_server, make_checkout, merchant
    ) -> None:
        checkout = make_checkout()
        stranger = make_buyer(merchant, external_id="someone_else")

        client = _ws(web_server, checkout.id, stranger)

        assert client.until_closed() == []
        assert client.close_code == 4401

    @pytest.mark.parametrize("path", ["checkout/{id}/ws", "customer/ws"])
    def test_a_bad_token_is_refused_with_4401(self, web_server, make_checkout, path) -> None:
        checkout = make_checkout()
        url = f"{web_server.ws_url}/v1/{path.format(id=checkout.id)}?token=bos_st_not_a_token"

        client = StatusSocket(url)

        assert client.until_closed() == []
        assert client.close_code == 4401

    def test_the_token_in_the_query_string_never_reaches_the_access_log(
        self, web_server, make_checkout, buyer
    ) -> None:
        checkout = make_checkout(status="processing")
        advance(checkout.id, "succeeded")
        _ws(web_server, checkout.id, buyer, via_query=True).until_closed()
        _sse(web_server, checkout.id, buyer, via_query=True).until_end()
        requests.get(f"{web_server.url}/v1/checkout/{checkout.id}/stream?token={buyer.token}x")

        assert f"/v1/checkout/{checkout.id}/stream" in web_server.log()
        assert buyer.token not in web_server.log()
        assert buyer.token[len("bos_st_") :] not in web_server.log()


class TestCheckoutEventStream:
    def test_snapshot_first_then_each_change_in_order_then_the_stream_ends(
        self, web_server, make_checkout, buyer
    ) -> None:
        checkout = make_checkout()
        stream = _sse(web_server, checkout.id, buyer)
        assert stream.status_code == 200
        assert stream.response.headers["Content-Type"].startswith("text/event-stream")

        first = stream.next_event()
        assert first is not None
        assert (first["event"], first["id"], first["data"]["status"]) == (
            "checkout.updated", "1", "pending",
        )  # fmt: skip
        advance(checkout.id, "open")
        stream.until_status("open")
        advance(checkout.id, "processing")
        stream.until_status("processing")
        advance(checkout.id, "succeeded")
        events = stream.until_end()

        assert [e["data"]["status"] for e in events] == [
            "pending",
            "open",
            "processing",
            "succeeded",
        ]
        assert [e["id"] for e in events] == ["1", "2", "3", "4"]
        assert [e["data"]["version"] for e in events] == [1, 2, 3, 4]

    def test_a_client_connecting_after_success_gets_the_final_snapshot_and_the_end(
        self, web_server, make_checkout, buyer
    ) -> None:
        checkout = make_checkout(status="processing")
        advance(checkout.id, "canceled")

        events = _sse(web_server, checkout.id, buyer, via_query=True).until_end()

        assert [(e["data"]["status"], e["id"]) for e in events] == [("canceled", "2")]

    def test_another_customers_checkout_is_404(self, web_server, make_checkout, merchant) -> None:
        checkout = make_checkout()
        stranger = make_buyer(merchant, external_id="someone_else")

        response = requests.get(
            f"{web_server.url}/v1/checkout/{checkout.id}/stream", headers=stranger.headers
        )

        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/problem+json"
        assert str(checkout.id) not in response.text

    def test_a_missing_token_is_401(self, web_server, make_checkout) -> None:
        checkout = make_checkout()

        response = requests.get(f"{web_server.url}/v1/checkout/{checkout.id}/stream")

        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"


class TestPing:
    def test_an_idle_sse_stream_receives_ping_comments(
        self, web_server, make_checkout, buyer
    ) -> None:
        checkout = make_checkout()
        response = requests.get(
            f"{web_server.url}/v1/checkout/{checkout.id}/stream",
            headers=buyer.headers,
            stream=True,
            timeout=20,
        )
        lines = response.iter_lines(decode_unicode=True)
        seen = []
        for line in lines:
            seen.append(line)
            if line == ": ping":
                break
        response.close()

        assert seen[0] == "id: 1"
        assert ": ping" in seen
