"""A real purchase watched live: gunicorn (gevent), a Celery worker, the Stripe emulator."""

from __future__ import annotations

from typing import Any

import requests

from tests.streams.clients import EventStream, StatusSocket


class TestPurchaseWatchedLive:
    def test_websocket_and_sse_see_open_processing_succeeded_in_order(
        self, web_server, merchant, buyer, stripe_emulator: Any, start_worker
    ) -> None:
        from tests.factories import make_product

        product = make_product(merchant, prices=[{"amount": 2900, "currency": "usd"}])
        worker = start_worker(concurrency=2)
        created = requests.post(
            f"{web_server.url}/v1/checkout/create",
            json={"price_id": str(product.prices[0].id)},
            headers={**buyer.headers, "Prefer": "wait=10"},
            timeout=20,
        )
        assert created.status_code == 201, (created.text, worker.log()[-3000:])
        checkout = created.json()
        path = f"/v1/checkout/{checkout['id']}"
        ws = StatusSocket(f"{web_server.ws_url}{path}/ws?token={buyer.token}")
        sse = EventStream(f"{web_server.url}{path}/stream", headers=buyer.headers)
        ws.until_status("open")
        sse.until_status("open")

        confirmed = requests.post(
            f"{web_server.url}/v1/checkout/{checkout['client_secret']}/confirm",
            json={"payment_method_id": "pm_card_visa"},
            headers=buyer.headers,
            timeout=20,
        )
        assert confirmed.status_code == 202, confirmed.text

        frames = [f["data"] for f in ws.until_closed()]
        events = [e["data"] for e in sse.until_end()]
        for seen in (frames, events):
            assert [d["status"] for d in seen] == ["open", "processing", "succeeded"]
            versions = [d["version"] for d in seen]
            assert versions == sorted(set(versions))
        assert ws.close_code == 1000
        final = requests.get(f"{web_server.url}{path}/status", headers=buyer.headers, timeout=10)
        assert final.status_code == 200
        assert frames[-1] == final.json()
        assert events[-1] == final.json()
