"""What one pytest process of one run owns, so that runs never share state.

Two checkouts on one machine, or `pytest -n 2` (pytest-xdist), run side by side; each pytest
process (the only one, or each xdist worker gw0, gw1, ...) gets:

- a Postgres database of its own on the shared server, `billingos_test_<run>_<worker>`: `<run>`
  is xdist's test-run id (the same in every worker of one run) or a fresh random id, `<worker>`
  the xdist worker id or `main`. The session creates and migrates it, and drops it at its end.
- a redis-server of its own on a port the kernel picked (`PrivateRedis`), not a db number on the
  shared Redis: the 16 db numbers are shared by every suite and `make run` on the machine, a db
  number does not separate pub/sub channels (the real-time bus publishes on server-wide
  channels, so two suites on one server would receive each other's messages), and a private
  server starts in milliseconds and stops with the session.
- free ports for everything else it starts (emulator, gunicorn): `processes.free_port`.

Overrides: TEST_DATABASE_URL names the database to use (under xdist each worker appends
`_<worker>`), TEST_REDIS_URL a Redis to use instead of a private one (under xdist worker N uses
db number + N; pub/sub channels are then shared by every run pointed at that server).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url

from tests.support.processes import PrivateRedis

SHARED_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def current_redis_url() -> str:
    """This process's Redis, once tests/conftest.py started it (or took TEST_REDIS_URL)."""
    return os.environ["REDIS_URL"]


@dataclass
class TestRun:
    """The run id and worker id of this pytest process, and the resources derived from them."""

    __test__ = False  # not a test class, whatever its name

    run_id: str
    worker: str

    @classmethod
    def current(cls) -> TestRun:
        # xdist sets both variables in a worker before it loads any conftest.
        run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
        return cls(run_id=run_id[:10], worker=os.environ.get("PYTEST_XDIST_WORKER", "main"))

    @property
    def is_xdist_worker(self) -> bool:
        return self.worker != "main"

    @property
    def worker_index(self) -> int:
        return int(self.worker.removeprefix("gw")) if self.is_xdist_worker else 0

    def database_url(self) -> str:
        override = os.environ.get("TEST_DATABASE_URL")
        if not override:
            return f"{SHARED_POSTGRES}/billingos_test_{self.run_id}_{self.worker}"
        if not self.is_xdist_worker:
            return override
        url = make_url(override)
        return url.set(database=f"{url.database}_{self.worker}").render_as_string(
            hide_password=False
        )

    def start_redis(self) -> tuple[str, PrivateRedis | None]:
        """The Redis URL of this process, and the private server behind it (None if overridden)."""
        override = os.environ.get("TEST_REDIS_URL")
        if override:
            parts = urlsplit(override)
            db = int(parts.path.lstrip("/") or 0) + self.worker_index
            return urlunsplit(parts._replace(path=f"/{db}")), None
        for attempt in range(1, 4):
            server = PrivateRedis()
            try:
                return server.url, server.start()
            except RuntimeError:
                # Another process took the free port between our probe and redis-server's bind.
                if attempt == 3 or "Address already in use" not in server.log():
                    raise
        raise AssertionError("unreachable")
