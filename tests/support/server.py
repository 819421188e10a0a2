"""The real web server for integration tests: gunicorn with gevent workers on a free port.

    server = start_web_server(workers=1, env={"STRIPE_API_BASE": emulator.url})
    requests.get(f"{server.url}/v1/products", headers=...)
    server.stop()

It runs `gunicorn.conf.py` + `app.wsgi:app` exactly as the Procfile does, against the test
database and Redis (inherited from tests/conftest.py's environment unless `env` overrides them),
and returns once `/healthz` answers. The `web_server` fixture of tests/streams/conftest.py shows
how to wrap it in a fixture.
"""

from __future__ import annotations

import signal
import sys
import time
import urllib.error
import urllib.request

from tests.support.processes import ManagedProcess, free_port

# What gunicorn logs when its port is taken (it retries, then exits).
PORT_TAKEN = "Connection in use"


class WebServer(ManagedProcess):
    def __init__(self, port: int, workers: int, env: dict[str, str] | None = None) -> None:
        argv = [
            sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py",
            "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "app.wsgi:app",
        ]  # fmt: skip
        super().__init__(argv, env={"LOG_LEVEL": "WARNING", **(env or {})}, name="web")
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 60.0) -> WebServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()[-4000:]}")
            try:
                # An http:// URL on loopback, built here.
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"gunicorn did not answer within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        # SIGINT is gunicorn's quick shutdown: open streams are cut instead of being waited
        # for during graceful_timeout.
        if self.running:
            self.kill(signal.SIGINT)
        super().stop(timeout)


def start_web_server(
    workers: int = 1, env: dict[str, str] | None = None, timeout: float = 60.0
) -> WebServer:
    for attempt in range(1, 4):
        server = WebServer(free_port(), workers, env)
        server.start()
        try:
            return server.wait_ready(timeout)
        except RuntimeError:
            # Another process (a parallel test run) bound the free port first: take another.
            if attempt == 3 or PORT_TAKEN not in server.log():
                raise
    raise AssertionError("unreachable")
