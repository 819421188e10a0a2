"""Open streams are counted in `billingos_stream_connections`, and uncounted when they end."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import METRICS_TOKEN
from tests.streams.clients import EventStream
from tests.streams.conftest import advance
from tests.support.processes import wait_until


def _open_streams(server) -> float:
    body = requests.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    ).text
    return sum(
        s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "billingos_stream_connections"
    )


def test_the_gauge_follows_streams_opening_and_ending(web_server, make_checkout, buyer) -> None:
    baseline = _open_streams(web_server)
    checkouts = [make_checkout(), make_checkout()]
    streams = [
        EventStream(f"{web_server.url}/v1/checkout/{c.id}/stream", headers=buyer.headers)
        for c in checkouts
    ]
    for stream in streams:
        assert stream.next_event() is not None  # open: its snapshot arrived
    assert _open_streams(web_server) == baseline + 2

    advance(checkouts[0].id, "canceled")
    streams[0].until_end()
    wait_until(lambda: _open_streams(web_server) == baseline + 1, what="one stream uncounted")

    advance(checkouts[1].id, "canceled")
    streams[1].until_end()
    wait_until(lambda: _open_streams(web_server) == baseline, what="both streams uncounted")
