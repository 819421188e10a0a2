"""`/v1/customer/ws` pushes usage totals: at most a few a second, the latest total winning."""

from __future__ import annotations

import itertools
import threading
import time

from app.db import db
from app.entitlements.service import recompute_entitlements
from app.streams.service import USAGE_MIN_INTERVAL_SECONDS
from tests.factories import make_product
from tests.streams.clients import StatusSocket
from tests.support.ownership import make_subscription

EVENTS = 40


def test_a_burst_of_usage_arrives_throttled_and_ends_on_the_latest_total(
    web_server, client, merchant, buyer
) -> None:
    product = make_product(
        merchant,
        name="Metered",
        features=[{"key": "api_calls", "name": "Calls", "type": "usage_quota", "limit": 10_000}],
        prices=[{"amount": 900, "currency": "usd", "interval": "month"}],
    )
    make_subscription(buyer.customer_id, product.prices[0])
    recompute_entitlements(db.session(), buyer.customer_id)
    db.session.commit()
    socket = StatusSocket(f"{web_server.ws_url}/v1/customer/ws", headers=buyer.headers)
    while socket.next_frame()["type"] != "entitlements.updated":  # type: ignore[index]
        pass

    # Frames are timestamped as they arrive, while the burst is being sent.
    arrivals: list[tuple[float, int]] = []

    def read() -> None:
        while not arrivals or arrivals[-1][1] < EVENTS:
            frame = socket.next_frame()
            if frame is None:
                return
            if frame["type"] == "usage.updated":
                assert frame["data"]["feature_key"] == "api_calls"
                arrivals.append((time.monotonic(), frame["data"]["consumed"]))

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(EVENTS):
        response = client.post(
            "/v1/features/track-usage",
            json={"feature_key": "api_calls", "quantity": 1, "idempotency_key": f"burst-{i}"},
            headers=buyer.headers,
        )
        assert response.status_code == 200
    reader.join(timeout=15)
    socket.close()
    assert arrivals and arrivals[-1][1] == EVENTS  # the latest total arrives

    totals = [total for _at, total in arrivals]
    assert totals == sorted(totals)  # never backwards
    assert len(totals) < EVENTS  # coalesced, not one push per event
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(arrivals)]
    # The server spaces them; the network may bunch two a little closer on arrival.
    assert all(gap >= USAGE_MIN_INTERVAL_SECONDS * 0.6 for gap in gaps), gaps
