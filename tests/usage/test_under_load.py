"""Correctness under load: concurrent clients, retried keys, one exact total."""

from __future__ import annotations

import random
import threading

from sqlalchemy import func, select

from app.db import db
from models import UsageAggregate, UsageEvent
from tests.usage.conftest import metrics, subscribe

CLIENTS = 20
EVENTS = 2000
REPEATED = 0.2


def test_concurrent_clients_with_repeated_keys_count_each_event_once(app, client, buyer, plans):
    subscribe(buyer, plans.business)
    rng = random.Random(15)
    # 80% distinct events; 20% of the sends repeat a key already sent (same quantity, as a retry).
    distinct = [(f"evt-{i}", rng.randint(1, 9)) for i in range(int(EVENTS * (1 - REPEATED)))]
    sends = distinct + [rng.choice(distinct) for _ in range(EVENTS - len(distinct))]
    rng.shuffle(sends)
    failures: list[str] = []

    def worker(batch: list[tuple[str, int]]) -> None:
        with app.app_context():
            http = app.test_client()
            for key, quantity in batch:
                response = http.post(
                    "/v1/features/track-usage",
                    json={"feature_key": "api_calls", "quantity": quantity, "idempotency_key": key},
                    headers=buyer.headers,
                )
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.get_data(as_text=True)}")

    threads = [threading.Thread(target=worker, args=(sends[i::CLIENTS],)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    expected = sum(quantity for _key, quantity in distinct)
    db.session.remove()
    assert db.session.execute(select(func.sum(UsageAggregate.consumed))).scalar() == expected
    assert db.session.execute(select(func.count()).select_from(UsageEvent)).scalar() == len(
        distinct
    )
    assert metrics(client, buyer)["api_calls"]["consumed"] == expected
