from __future__ import annotations

import redis
from flask import Flask, current_app


def init_redis(app: Flask, url: str) -> None:
    # One pool per process; redis-py's pool is safe to share between greenlets and threads.
    app.extensions["redis"] = redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )


def get_redis() -> redis.Redis:
    client: redis.Redis = current_app.extensions["redis"]
    return client
