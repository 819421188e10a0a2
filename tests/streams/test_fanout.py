"""Fan-out across processes, through a Redis restart, to a thousand clients, and polling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis
import requests

from app.realtime import RealtimePublisher, realtime_of
from tests.streams.clients import EventStream, StatusSocket
from tests.streams.conftest import FAST_REALTIME, advance
from tests.support.server import start_web_server

SWARM = Path(__file__).with_name("swarm.py")


def _ws(server, checkout_id, buyer) -> StatusSocket:
    return StatusSocket(f"{server.ws_url}/v1/checkout/{checkout_id}/ws", headers=buyer.headers)


def _sse(server, checkout_id, buyer) -> EventStream:
    return EventStream(f"{server.url}/v1/checkout/{checkout_id}/stream", headers=buyer.headers)


def _statuses(messages) -> list[tuple[str, int]]:
    return [(m["data"]["status"], m["data"]["version"]) for m in messages]


class TestTwoWebProcesses:
    def test_each_process_delivers_to_its_own_clients(
        self, web_server, make_checkout, buyer
    ) -> None:
        other = start_web_server(workers=1, env=FAST_REALTIME)
        try:
            checkout = make_checkout()
            here, there = _ws(web_server, checkout.id, buyer), _ws(other, checkout.id, buyer)
            there_sse = _sse(other, checkout.id, buyer)
            for client in (here, there):
                client.until_status("pending")
            there_sse.until_status("pending")

            advance(checkout.id, "open")
            advance(checkout.id, "processing")
            advance(checkout.id, "succeeded")

            for client in (here, there):
                frames = client.until_closed()
                assert frames[-1]["data"]["status"] == "succeeded"
                versions = [f["data"]["version"] for f in frames]
                assert versions == sorted(set(versions))
                assert client.close_code == 1000
            assert there_sse.until_end()[-1]["data"]["status"] == "succeeded"
        finally:
            other.stop()


class TestRedisRestart:
    def test_clients_end_with_the_true_state_after_redis_comes_back(
        self, app, private_redis, make_checkout, buyer
    ) -> None:
        server = start_web_server(workers=1, env={**FAST_REALTIME, "REDIS_URL": private_redis.url})
        realtime = realtime_of(app)
        usual_publisher = realtime.publisher
        # This test's writes publish to the private Redis the server listens to.
        realtime.publisher = RealtimePublisher(
            redis.Redis.from_url(private_redis.url, socket_connect_timeout=0.5)
        )
        try:
            checkout = make_checkout()
            ws, sse = _ws(server, checkout.id, buyer), _sse(server, checkout.id, buyer)
            ws.until_status("pending")
            sse.until_status("pending")
            advance(checkout.id, "open")
            ws.until_status("open")
            sse.until_status("open")

            private_redis.stop()
            # Committed while Redis is down: published into the void, never lost for clients.
            advance(checkout.id, "processing")
            advance(checkout.id, "succeeded")
            private_redis.start()

            frames = ws.until_closed()
            events = sse.until_end()
            assert _statuses(frames)[-1] == ("succeeded", 4)
            assert _statuses(events)[-1] == ("succeeded", 4)
            for seen in (frames, events):
                versions = [m["data"]["version"] for m in seen]
                assert versions == sorted(set(versions))
            assert ws.close_code == 1000
            assert "Redis subscription lost" in server.log()
        finally:
            realtime.publisher = usual_publisher
            server.stop()


class TestThousandClients:
    def test_one_process_delivers_a_broadcast_to_a_thousand_websockets(
        self, web_server, make_checkout, buyer
    ) -> None:
        count = 1000
        checkout = make_checkout(status="processing")
        swarm = subprocess.Popen(
            [
                sys.executable, str(SWARM),
                f"{web_server.ws_url}/v1/checkout/{checkout.id}/ws", str(count), "succeeded",
            ],
            env={**os.environ, "SWARM_TOKEN": buyer.token},
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert swarm.stdout is not None
            ready = swarm.stdout.readline().split()
            assert ready == ["READY", str(count)]

            advance(checkout.id, "succeeded")

            summary = json.loads(swarm.stdout.readline())
            swarm.wait(timeout=60)
        finally:
            if swarm.poll() is None:
                swarm.kill()
        assert summary == {
            "snapshots": count,
            "finals": count,
            "close_codes": {"1000": count},
            "errors": {},
        }


class TestPolling:
    def test_an_unchanged_status_answers_304_and_a_change_a_new_etag(
        self, web_server, make_checkout, buyer
    ) -> None:
        checkout = make_checkout()
        url = f"{web_server.url}/v1/checkout/{checkout.id}/status"

        first = requests.get(url, headers=buyer.headers, timeout=10)
        assert first.status_code == 200
        etag = first.headers["ETag"]
        unchanged = requests.get(url, headers={**buyer.headers, "If-None-Match": etag}, timeout=10)
        assert unchanged.status_code == 304
        assert unchanged.content == b""

        advance(checkout.id, "open")
        changed = requests.get(url, headers={**buyer.headers, "If-None-Match": etag}, timeout=10)
        assert changed.status_code == 200
        assert changed.headers["ETag"] != etag
        assert changed.json()["version"] == 2

    def test_the_status_the_stream_sends_is_the_status_endpoints_body(
        self, web_server, make_checkout, buyer
    ) -> None:
        checkout = make_checkout()
        client = _ws(web_server, checkout.id, buyer)
        client.until_status("pending")
        advance(checkout.id, "open", client_secret="pi_9_secret_y", intent_type="payment")
        frame = client.until_status("open")
        client.close()

        polled = requests.get(
            f"{web_server.url}/v1/checkout/{checkout.id}/status", headers=buyer.headers, timeout=10
        ).json()
        assert frame["data"] == polled

    def test_another_customers_checkout_is_404(self, web_server, make_checkout, merchant) -> None:
        from tests.factories import make_buyer

        checkout = make_checkout()
        stranger = make_buyer(merchant, external_id="someone_else")

        response = requests.get(
            f"{web_server.url}/v1/checkout/{checkout.id}/status", headers=stranger.headers
        )

        assert response.status_code == 404
