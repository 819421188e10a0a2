"""Event processing with pgbouncer (transaction pooling) between the workers and Postgres.

The deployment docs/scaling.md recommends: pgbouncer in transaction mode, and therefore
`DB_SERVER_PREPARE=0` (a transaction pooler cannot keep a session's prepared statements, so
the entitlement diff goes as plain SQL, planned each time). pgbouncer (the Debian package) runs
on a free loopback port with a server pool of 4; the same purchases are processed by 2 worker
processes once through it and once directly (server-side PREPARE on), in the same run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.figures import BenchContext, FeatureMissing, progress
from bench.figures.event_processing import processing_rate
from bench.procs import free_port, wait_for_port
from bench.results import Figure, not_available

KEY = (
    "pgbouncer_event_processing",
    "event processing through pgbouncer (transaction mode, no PREPARE)",
    "events/s",
)
GOAL = "≥ 80% of direct"
POOL_SIZE = 4


def measure(ctx: BenchContext) -> list[Figure]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        return [not_available(*KEY, GOAL, "pgbouncer is not installed (apt-get install pgbouncer)")]
    try:
        with _pgbouncer(ctx, binary) as url:
            total = max(100, ctx.durations.samples // 4)
            direct, direct_done, _ = processing_rate(ctx, total)
            progress(f"event processing through pgbouncer ({url.split('@')[-1]})")
            pooled, pooled_done, _ = processing_rate(
                ctx, total, {"DATABASE_URL": url, "DB_SERVER_PREPARE": "0"}
            )
    except FeatureMissing as exc:
        return [not_available(*KEY, GOAL, str(exc))]
    finally:
        ctx.stop_workers()
    figure = Figure(
        *KEY,
        goal=GOAL,
        value=pooled,
        baseline=direct,
        baseline_label="same purchases, direct to Postgres with PREPARE",
        details={
            "events": total,
            "effects_committed": {"pgbouncer": pooled_done, "direct": direct_done},
            "pool_mode": "transaction",
            "server_pool_size": POOL_SIZE,
        },
    )
    figure.passed = pooled_done == total and (figure.ratio or 0) >= 0.8
    return [figure]


class _pgbouncer:
    """pgbouncer in front of the bench database; the context value is its DATABASE_URL."""

    def __init__(self, ctx: BenchContext, binary: str) -> None:
        self.ctx, self.binary = ctx, binary

    def __enter__(self) -> str:
        target = make_url(self.ctx.stack.database_url)
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pgbouncer-"))
        port = free_port()
        (self.dir / "users.txt").write_text(f'"{target.username}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{target.database} = host={target.host} port={target.port or 5432}"
            f" dbname={target.database} timezone=UTC\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
            f"unix_socket_dir = {self.dir}\n"
            "auth_type = trust\n"
            f"auth_file = {self.dir / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {POOL_SIZE}\n"
            "max_client_conn = 500\n"
            # pgbouncer refuses the `options` startup parameter the app sends for its session
            # time zone; the server connections get that time zone from [databases] instead.
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        self.dir.chmod(0o755)
        for path in self.dir.iterdir():
            path.chmod(0o644)
        # pgbouncer will not run as root; as root, it is told to switch to the postgres user.
        as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [self.binary, *as_user, str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, 15)
        except Exception as exc:
            self.__exit__()
            raise FeatureMissing(f"pgbouncer did not start: {exc}") from None
        time.sleep(0.2)
        return str(target.set(host="127.0.0.1", port=port).render_as_string(hide_password=False))

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
