"""Realtime settings come from `REALTIME_<NAME>` through the one settings parser."""

from __future__ import annotations

import pytest

from app.config import ConfigError, RealtimeSettings, Settings


def test_defaults_cap_streams_and_close_idle_ones_after_the_checkout_lifetime():
    realtime = Settings.from_env({}).realtime
    assert realtime == RealtimeSettings()
    assert (realtime.max_streams_per_token, realtime.max_streams_per_customer) == (10, 30)
    assert realtime.idle_timeout_seconds == 3900.0
    assert realtime.stream_lease_seconds == 60.0


def test_every_field_is_read_from_its_environment_variable():
    realtime = Settings.from_env(
        {
            "REALTIME_MAX_STREAMS_PER_TOKEN": "2",
            "REALTIME_MAX_STREAMS_PER_CUSTOMER": "5",
            "REALTIME_IDLE_TIMEOUT_SECONDS": "600",
            "REALTIME_STREAM_LEASE_SECONDS": "7.5",
            "REALTIME_WS_PING_SECONDS": "3",
        }
    ).realtime
    assert realtime.max_streams_per_token == 2
    assert isinstance(realtime.max_streams_per_token, int)
    assert realtime.max_streams_per_customer == 5
    assert realtime.idle_timeout_seconds == 600.0
    assert realtime.stream_lease_seconds == 7.5
    assert realtime.ws_ping_seconds == 3.0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REALTIME_MAX_STREAMS_PER_TOKEN", "1.5", "must be an integer"),
        ("REALTIME_IDLE_TIMEOUT_SECONDS", "an hour", "must be a number"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(name: str, value: str, message: str):
    with pytest.raises(ConfigError, match=f"{name} {message}"):
        Settings.from_env({name: value})
