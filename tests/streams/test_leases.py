"""Stream leases against the real Redis: the caps, renewal, release and expiry of a lease."""

from __future__ import annotations

import time
import uuid

import pytest

from app.config import RealtimeSettings
from app.streams.leases import TooManyStreams, acquire_lease, customer_key, token_key

SHORT = RealtimeSettings(
    max_streams_per_token=2, max_streams_per_customer=3, stream_lease_seconds=1
)


@pytest.fixture()
def customer(app_context: None) -> uuid.UUID:
    return uuid.uuid4()


def _lease(token: str, customer: uuid.UUID):  # type: ignore[no-untyped-def]
    lease = acquire_lease(SHORT, token, customer)
    assert lease is not None
    return lease


def test_the_token_cap_refuses_one_more_until_a_lease_is_released(customer, redis_client):
    first, _second = _lease("t1", customer), _lease("t1", customer)
    with pytest.raises(TooManyStreams) as refused:
        acquire_lease(SHORT, "t1", customer)
    assert refused.value.status == 429 and refused.value.headers["Retry-After"]
    assert "session token already has 2" in refused.value.detail
    first.release()
    first.release()  # twice is harmless
    assert _lease("t1", customer) is not None


def test_the_customer_cap_counts_all_its_tokens(customer):
    _lease("t1", customer), _lease("t1", customer), _lease("t2", customer)
    with pytest.raises(TooManyStreams, match="customer already has 3"):
        acquire_lease(SHORT, "t2", customer)
    assert _lease("t3", uuid.uuid4()) is not None  # another customer


def test_a_lease_nobody_renews_expires_and_frees_its_slot(customer, redis_client):
    _lease("t1", customer), _lease("t1", customer)
    assert redis_client.pttl(token_key("t1")) > 0  # the keys themselves expire too
    time.sleep(1.2)
    assert _lease("t1", customer) is not None
    assert redis_client.zcard(token_key("t1")) == 1


def test_a_renewed_lease_outlives_its_first_expiry(customer, redis_client):
    kept, _lapsed = _lease("t1", customer), _lease("t1", customer)
    for _ in range(3):
        time.sleep(0.4)
        kept.renew()
    # 1.2 s after both were taken: only the renewed one still holds a slot.
    assert _lease("t1", customer) is not None
    with pytest.raises(TooManyStreams):
        acquire_lease(SHORT, "t1", customer)
    assert redis_client.zcard(customer_key(customer)) == 2
