"""Real processes for integration tests: Celery workers, a private redis-server, and the helpers
every process test needs (a free port, polling until something is true).

Tests that need "a real worker" start one here against the run's test database and Redis (the
environment set by tests/conftest.py), and may kill it with SIGKILL to test redelivery. Every
process started here gets SIGTERM when the pytest process that started it dies, even by SIGKILL,
so an interrupted run leaves no gunicorn, worker or redis-server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the kernel picks it; never a fixed one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy and return that (never a timing
    assertion: the timeout is generous and only says how long to keep trying)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask Linux to SIGTERM it when pytest dies.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedProcess:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None, name: str = "proc"):
        self.argv = argv
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"billingos-{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() reaches the children
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not log {needle!r}:\n{self.log()[-4000:]}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a Celery parent and its pool children)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=15)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass


def celery_worker(
    concurrency: int = 2, pool: str = "prefork", env: dict[str, str] | None = None
) -> ManagedProcess:
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    argv = [
        sys.executable, "-m", "celery", "-A", "tasks.worker", "worker",
        "--loglevel", "INFO", "-P", pool, "-c", str(concurrency), "-n", name,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    return ManagedProcess(argv, env=env, name="worker")


def start_celery_worker(
    concurrency: int = 2, pool: str = "prefork", env: dict[str, str] | None = None
) -> ManagedProcess:
    worker = celery_worker(concurrency, pool, env).start()
    worker.wait_for_log("ready.", timeout=60)
    return worker


class PrivateRedis(ManagedProcess):
    """A redis-server of our own on a free port, without persistence: the test run's Redis, or
    one a test may stop and restart without touching anybody else's."""

    def __init__(self) -> None:
        self.port = free_port()
        argv = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        super().__init__(argv, name="redis")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        super().start()

        def answers() -> bool:
            if not self.running:
                raise RuntimeError(f"redis-server exited early:\n{self.log()}")
            try:
                return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping())
            except redis.RedisError:
                return False

        wait_until(answers, timeout=15, what="redis-server to answer PING")
        return self
