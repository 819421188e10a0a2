from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import redis
from flask import Flask, current_app

log = logging.getLogger(__name__)


def init_redis(app: Flask, url: str) -> None:
    # One pool per process; redis-py's pool is safe to share between greenlets and threads.
    app.extensions["redis"] = redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )


def get_redis() -> redis.Redis:
    client: redis.Redis = current_app.extensions["redis"]
    return client


# ---------------------------------------------------------------------------- after commit
#
# A processed event's after-commit work is several Redis writes (the checkout's status
# message, the entitlement cache invalidation, the entitlements message): one round trip each
# was a visible share of a worker's time per event. While `one_round_trip()` is active, writers
# hand their commands to `defer` instead, and they go out together, in one MULTI/EXEC per Redis
# server, when the block ends. MULTI keeps each writer's own atomicity (the cache's INCR + DEL).

Command = Callable[[redis.client.Pipeline], None]
_deferred: ContextVar[dict[tuple[Any, ...], tuple[redis.Redis, list[Command]]] | None] = ContextVar(
    "billingos_deferred_redis", default=None
)


def defer(client: redis.Redis, command: Command) -> bool:
    """Queue `command` for the active `one_round_trip()`; False (run it yourself) if none is."""
    pending = _deferred.get()
    if pending is None:
        return False
    kwargs = client.connection_pool.connection_kwargs
    server = (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"), kwargs.get("db"))
    pending.setdefault(server, (client, []))[1].append(command)
    return True


@contextmanager
def one_round_trip() -> Iterator[None]:
    token = _deferred.set({})
    try:
        yield
    finally:
        pending = _deferred.get() or {}
        _deferred.reset(token)
        for client, commands in pending.values():
            try:
                pipe = client.pipeline(transaction=True)
                for command in commands:
                    command(pipe)
                pipe.execute()
            except (redis.RedisError, OSError) as exc:
                # The rows are committed: clients reload from Postgres on reconnect, and a
                # lost cache invalidation is bounded by the cache's TTL.
                log.warning(
                    "after-commit Redis writes lost (%d): %s", len(commands), type(exc).__name__
                )
