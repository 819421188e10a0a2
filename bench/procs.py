"""Processes the harnesses start — and always stop, on any exit.

Every process is started in its own session (process group) and registered with a
`ProcessRegistry`; the registry kills every group it started at exit, on SIGINT/SIGTERM, and on
an exception, so an interrupted `make bench` never leaves a gunicorn or a private Postgres behind.
Only processes this registry started are ever signalled.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

# One free_port for the harnesses and the tests.
from tests.support.processes import free_port as free_port

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def raise_nofile_limit(target: int = 20_000) -> None:
    """Raise the soft open-file limit toward the hard one (10,000 sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def wait_for_port(port: int, timeout: float = 30.0, proc: Managed | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.running:
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:.0f} s")


class Managed:
    """One started process (group) with its log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_dir: Path,
        cwd: Path = ROOT,
        high_nofile: bool = False,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.high_nofile = high_nofile
        self.user = user
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Managed:
        log = self.log_path.open("ab")
        preexec: Callable[[], None] | None = raise_nofile_limit if self.high_nofile else None
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=preexec,
            user=self.user,
        )
        log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_for_log(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.tail(200_000):
                return
            if not self.running:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not log {needle!r} in {timeout:.0f} s:\n{self.tail()}")

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group (a gunicorn arbiter with its workers, a Celery pool)."""
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)

    def stop(self, timeout: float = 8.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        # Children that outlived their parent (a worker of a killed arbiter) are still in the group.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class ProcessRegistry:
    """Starts processes and guarantees they are gone when the harness exits, however it exits."""

    def __init__(self, label: str) -> None:
        self.keep_logs = os.environ.get("BENCH_KEEP_LOGS") == "1"
        # Logs kept on request are raw material: next to the results, in the ignored tmp/.
        keep_dir = ROOT / "bench" / "results" / "tmp"
        if self.keep_logs:
            keep_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(
            tempfile.mkdtemp(prefix=f"billingos-{label}-", dir=keep_dir if self.keep_logs else None)
        )
        self.processes: list[Managed] = []
        self.cleanups: list[Callable[[], None]] = []
        self._closed = False
        atexit.register(self.close)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        print(f"\n[harness] signal {signum}: stopping everything it started", flush=True)
        self.close()
        sys.exit(128 + signum)

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        *,
        high_nofile: bool = False,
        user: str | None = None,
        cwd: Path = ROOT,
    ) -> Managed:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        proc = Managed(name, argv, full_env, self.log_dir, cwd, high_nofile, user).start()
        self.processes.append(proc)
        return proc

    def on_close(self, cleanup: Callable[[], None]) -> None:
        """Run `cleanup` (drop a database, remove a temp dir) when the harness closes."""
        self.cleanups.append(cleanup)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self.processes):
            proc.stop(timeout=5)
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:  # a failed cleanup must not hide the others
                print(f"[harness] cleanup failed: {exc}", flush=True)
        if not self.keep_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_bytes_of(pid: int) -> int:
    """Resident set size of a live process (from /proc), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (e.g. a gunicorn arbiter's workers)."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out
