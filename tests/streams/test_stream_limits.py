"""Abuse limits on streams, against real gunicorn processes sharing the real Redis.

Ownership is checked before anything is subscribed or counted; open streams are capped per
session token and per customer across every web process (Redis leases that a crashed process
loses by expiry); a stream with no change for the idle limit is closed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.auth import digest
from app.realtime import checkout_channel
from app.streams.leases import RETRY_AFTER_SECONDS, customer_key, token_key
from tests.factories import make_buyer
from tests.streams.clients import EventStream, StatusSocket
from tests.streams.conftest import FAST_REALTIME, advance
from tests.support.processes import wait_until
from tests.support.server import WebServer, start_web_server

LEASE_SECONDS = 6
CAPPED = {
    **FAST_REALTIME,
    "REALTIME_MAX_STREAMS_PER_TOKEN": "2",
    "REALTIME_MAX_STREAMS_PER_CUSTOMER": "3",
    "REALTIME_STREAM_LEASE_SECONDS": str(LEASE_SECONDS),
}


def _start(env: dict[str, str]) -> WebServer:
    return start_web_server(workers=1, env=env)


def _stop(server: WebServer) -> None:
    log = server.log()
    server.stop()
    assert "Traceback" not in log, log[-6000:]


@pytest.fixture(scope="module")
def two_servers(app: Any) -> Iterator[tuple[WebServer, WebServer]]:
    """Two web processes with small caps: a cap must hold across processes, not per process."""
    first, second = _start(CAPPED), _start(CAPPED)
    yield first, second
    _stop(first)
    _stop(second)


def _customer_ws(server: WebServer, buyer: Any) -> StatusSocket:
    return StatusSocket(f"{server.ws_url}/v1/customer/ws", headers=buyer.headers)


def _admitted(client: StatusSocket) -> bool:
    """Whether the stream started (its snapshot came) rather than being closed at once."""
    return client.next_frame() is not None


class TestOwnershipComesFirst:
    def test_a_foreign_checkout_id_never_subscribes_nor_takes_a_slot(
        self, two_servers, make_checkout, merchant, buyer, redis_client
    ) -> None:
        server = two_servers[0]
        other = make_buyer(merchant, external_id="someone_else")
        foreign = make_checkout(for_buyer=other)

        ws = StatusSocket(f"{server.ws_url}/v1/checkout/{foreign.id}/ws", headers=buyer.headers)
        assert ws.until_closed() == []
        assert (ws.close_code, ws.close_reason) == (4401, "not_found")
        sse = EventStream(f"{server.url}/v1/checkout/{foreign.id}/stream", headers=buyer.headers)
        assert sse.status_code == 404

        # An unsubscription would come a grace period (30 s) after the last client: a
        # subscription made at all would still be in force here.
        channel = checkout_channel(foreign.id)
        assert redis_client.pubsub_numsub(channel) == [(channel.encode(), 0)]
        assert redis_client.exists(token_key(digest(buyer.token))) == 0
        assert redis_client.exists(customer_key(buyer.customer_id)) == 0

        # The owner's own stream does subscribe (so the check above can see a subscription).
        own = StatusSocket(f"{server.ws_url}/v1/checkout/{foreign.id}/ws", headers=other.headers)
        assert _admitted(own)
        assert redis_client.pubsub_numsub(channel) == [(channel.encode(), 1)]
        own.close()


class TestConnectionCaps:
    def test_the_token_cap_holds_across_processes_and_frees_on_disconnect(
        self, two_servers, buyer, redis_client
    ) -> None:
        first, second = two_servers
        held = [_customer_ws(first, buyer), _customer_ws(second, buyer)]
        assert all(_admitted(client) for client in held)

        refused = _customer_ws(first, buyer)
        assert refused.until_closed() == []
        assert (refused.close_code, refused.close_reason) == (4429, "too_many_streams")
        checkout_sse = EventStream(
            f"{second.url}/v1/checkout/00000000-0000-0000-0000-000000000000/stream",
            headers=buyer.headers,
        )
        assert checkout_sse.status_code == 404  # ownership first, even over the cap

        held[0].close()
        # The first process notices the close and gives the slot back.
        key = token_key(digest(buyer.token))
        wait_until(lambda: redis_client.zcard(key) == 1, timeout=15, interval=0.2)
        again = _customer_ws(second, buyer)
        assert _admitted(again)
        for client in (held[1], again):
            client.close()
        wait_until(lambda: redis_client.zcard(key) == 0, timeout=15, interval=0.2)

    def test_sse_over_the_cap_is_a_429_problem_with_retry_after(
        self, two_servers, make_checkout, buyer
    ) -> None:
        first, second = two_servers
        checkout = make_checkout()
        url = f"/v1/checkout/{checkout.id}/stream"
        held = [EventStream(first.url + url, headers=buyer.headers), _customer_ws(second, buyer)]
        assert held[0].status_code == 200 and held[0].next_event() is not None
        assert _admitted(held[1])

        refused = EventStream(second.url + url, headers=buyer.headers)
        assert refused.status_code == 429
        assert refused.response.headers["Content-Type"] == "application/problem+json"
        assert refused.response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert refused.response.json()["code"] == "too_many_streams"
        for client in (*held, refused):
            client.close()

    def test_the_customer_cap_counts_every_token_of_the_customer(
        self, two_servers, merchant, buyer
    ) -> None:
        first, second = two_servers
        second_token = make_buyer(merchant, external_id=buyer.external_id)
        assert second_token.customer_id == buyer.customer_id
        held = [
            _customer_ws(first, buyer),
            _customer_ws(second, buyer),
            _customer_ws(second, second_token),
        ]
        assert all(_admitted(client) for client in held)

        refused = _customer_ws(first, second_token)  # its token has one stream, the customer 3
        assert refused.until_closed() == []
        assert refused.close_code == 4429
        stranger = _customer_ws(first, make_buyer(merchant, external_id="another_customer"))
        assert _admitted(stranger)
        for client in (*held, stranger):
            client.close()

    def test_a_crashed_process_loses_its_slots_when_their_leases_expire(
        self, two_servers, buyer, redis_client
    ) -> None:
        survivor = two_servers[0]
        doomed = _start(CAPPED)
        try:
            held = [_customer_ws(doomed, buyer), _customer_ws(doomed, buyer)]
            assert all(_admitted(client) for client in held)
            workers = subprocess.run(
                ["pgrep", "-P", str(doomed.proc.pid)],  # type: ignore[union-attr]
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            for pid in workers:  # the worker dies without a chance to clean up
                os.kill(int(pid), signal.SIGKILL)
            crashed_at = time.monotonic()
            refused = _customer_ws(survivor, buyer)
            assert refused.until_closed() == []
            assert refused.close_code == 4429

            def admitted_again() -> bool:
                return _admitted(_customer_ws(survivor, buyer))

            wait_until(admitted_again, timeout=LEASE_SECONDS + 10, interval=0.2)
            assert time.monotonic() - crashed_at < LEASE_SECONDS + 10
        finally:
            doomed.stop()


class TestIdleStreams:
    @pytest.fixture(scope="class")
    def impatient_server(self, app: Any) -> Iterator[WebServer]:
        server = _start({**FAST_REALTIME, "REALTIME_IDLE_TIMEOUT_SECONDS": "3"})
        yield server
        _stop(server)

    def test_a_stream_without_changes_is_closed_after_the_idle_limit(
        self, impatient_server, make_checkout, buyer, redis_client
    ) -> None:
        checkout = make_checkout()
        ws = StatusSocket(
            f"{impatient_server.ws_url}/v1/checkout/{checkout.id}/ws", headers=buyer.headers
        )
        sse = EventStream(
            f"{impatient_server.url}/v1/checkout/{checkout.id}/stream", headers=buyer.headers
        )
        started = time.monotonic()
        assert [f["data"]["status"] for f in ws.until_closed()] == ["pending"]
        assert ws.close_code == 1001
        assert [e["data"]["status"] for e in sse.until_end()] == ["pending"]
        assert 2.5 < time.monotonic() - started < 15
        # Both slots were given back.
        wait_until(
            lambda: redis_client.zcard(token_key(digest(buyer.token))) == 0,
            timeout=15,
            interval=0.2,
        )

    def test_a_change_restarts_the_idle_clock(self, impatient_server, make_checkout, buyer) -> None:
        checkout = make_checkout()
        ws = StatusSocket(
            f"{impatient_server.ws_url}/v1/checkout/{checkout.id}/ws", headers=buyer.headers
        )
        assert ws.until_status("pending")
        time.sleep(2)
        advance(checkout.id, "open")
        changed = time.monotonic()
        assert ws.until_status("open")
        # Pings (every 2 s here) come and go; only the lack of a change closes the stream.
        assert ws.until_closed() and ws.close_code == 1001
        assert time.monotonic() - changed > 2.5
