"""The suite's own isolation: two runs, or two workers of one run, never share state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis
from sqlalchemy.engine import make_url

from tests.conftest import RUN
from tests.support.isolation import TestRun, current_redis_url
from tests.support.processes import ROOT, wait_until


@pytest.fixture()
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)


class TestDerivedNames:
    def test_every_worker_of_every_run_has_its_own_database(self, no_overrides: None) -> None:
        names = {
            make_url(TestRun(run, worker).database_url()).database
            for run in ("run1", "run2")
            for worker in ("gw0", "gw1", "main")
        }
        assert len(names) == 6
        assert make_url(TestRun("run1", "gw1").database_url()).database == "billingos_test_run1_gw1"

    def test_an_explicit_database_is_kept_alone_and_suffixed_per_worker(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TEST_DATABASE_URL", "postgresql+psycopg2://postgres@db:5432/mine")
        assert TestRun("r", "main").database_url().endswith("@db:5432/mine")
        assert TestRun("r", "gw1").database_url().endswith("@db:5432/mine_gw1")

    def test_an_explicit_redis_gives_each_worker_the_next_db(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TEST_REDIS_URL", "redis://127.0.0.1:6379/4")
        assert TestRun("r", "main").start_redis() == ("redis://127.0.0.1:6379/4", None)
        assert TestRun("r", "gw2").start_redis() == ("redis://127.0.0.1:6379/6", None)


class TestThisProcess:
    def test_the_app_uses_this_runs_and_workers_database(self, app_context: None) -> None:
        from app.db import db

        assert db.engine is not None
        assert db.engine.url.database == make_url(RUN.database_url()).database
        assert os.environ["DATABASE_URL"] == RUN.database_url()

    def test_redis_is_a_private_server_unless_one_was_chosen(self) -> None:
        if os.environ.get("TEST_REDIS_URL"):
            pytest.skip("TEST_REDIS_URL chose the Redis")
        url = current_redis_url()
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert port != 6379
        assert redis.Redis.from_url(url).info("server")["tcp_port"] == port


def test_a_process_a_test_started_dies_with_the_pytest_that_started_it(tmp_path: Path) -> None:
    # A stand-in for pytest: it starts a long sleep through the suite's helper and is SIGKILLed.
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from tests.support.processes import ManagedProcess
            child = ManagedProcess(["sleep", "300"], name="sleeper").start()
            print(child.proc.pid, flush=True)
            time.sleep(300)
            """
        )
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert _alive(child_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    wait_until(lambda: not _alive(child_pid), timeout=10, what="the orphaned child to exit")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # an exited child nobody has reaped yet is a zombie, not alive
