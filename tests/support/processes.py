"""Real processes for integration tests: Celery workers (and whatever else runs as a process).

Tests that need "a real worker" start one here against the test database and Redis db (the
environment set by tests/conftest.py), and may kill it with SIGKILL to test redelivery.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
