"""Websocket capacity: idle clients on ONE web process, memory per client, broadcast to all.

A separate gunicorn with one gevent worker (same gunicorn.conf.py, open-file soft limit raised
toward the 20,000 hard limit) takes N websocket clients on one checkout, connected from a client
process with the same raised limit. Memory per client is the worker's RSS growth divided by N
(RSS measured after one warm-up client, so imports and the subscriber are not counted).
Broadcast is one committed checkout change → the moment the LAST client has it (timestamps
taken by the clients at receipt, so the client process's own work is included: its CPU during
the broadcast is reported as the load generator's, which the figure did not report before).
"""

from __future__ import annotations

import time
import uuid

from bench.figures import BenchContext, FeatureMissing, progress
from bench.procs import children_of, cpu_seconds_of, rss_bytes_of
from bench.results import Figure, not_available
from bench.wsclient import WsClients, monotonic_ns

CLIENTS = ("websocket_clients", "websocket clients on one web process", "clients")
MEMORY = ("websocket_memory", "memory per idle websocket client", "KB")
BROADCAST = ("websocket_broadcast", "broadcast to all websocket clients", "ms")
GOALS = ("10,000 clients", "≤ 40 KB each", "≤ 1,000 ms")


def measure(ctx: BenchContext) -> list[Figure]:
    try:
        return _measure(ctx)
    except FeatureMissing as exc:
        return [
            not_available(*CLIENTS, GOALS[0], str(exc)),
            not_available(*MEMORY, GOALS[1], str(exc)),
            not_available(*BROADCAST, GOALS[2], str(exc)),
        ]


def _measure(ctx: BenchContext) -> list[Figure]:
    wanted = ctx.durations.websockets
    web, port = ctx.stack.start_web("web-ws", workers=1, high_nofile=True)
    try:
        checkout = ctx.create_open_checkouts(1, with_payment_intent=False)[0]
        path = f"/v1/checkout/{checkout['checkout_id']}/ws?token={checkout['token']}"
        workers = children_of(web.pid or 0)
        if len(workers) != 1:
            raise FeatureMissing(f"expected one gunicorn worker, found {len(workers)}")
        worker_pid = workers[0]
        warm = WsClients({"host": "127.0.0.1", "port": port, "paths": [path], "count": 1}).start()
        try:
            if warm.wait_connected(30)["ok"] != 1:
                raise FeatureMissing(f"GET /v1/checkout/{{id}}/ws answered {warm.connected}")
            warm.wait_for(lambda r: r.get("event") == "message", 10)
            time.sleep(0.5)
            rss_before = rss_bytes_of(worker_pid)
        finally:
            warm.stop()
        progress(f"websocket capacity: connecting {wanted:,} clients to one web process")
        started = time.monotonic()
        clients = WsClients(
            {
                "host": "127.0.0.1",
                "port": port,
                "paths": [path],
                "count": wanted,
                "connect_concurrency": 100,
                "connect_timeout": 240,
            }
        ).start()
        try:
            connected = clients.wait_connected(300)
            ok = int(connected["ok"])
            progress(
                f"  {ok:,} connected in {time.monotonic() - started:.0f} s "
                f"({connected['statuses']})"
            )
            snapshots = clients.wait_count(lambda r: r.get("event") == "message", ok, 60)
            time.sleep(1.0)
            rss_after = rss_bytes_of(worker_pid)
            per_client_kb = (rss_after - rss_before) / max(ok, 1) / 1024
            client_cpu0, wall0 = cpu_seconds_of(clients.pid or 0), time.monotonic()
            broadcast_ms, reached = _broadcast(ctx, checkout["checkout_id"], clients, ok)
            client_cores = (cpu_seconds_of(clients.pid or 0) - client_cpu0) / max(
                time.monotonic() - wall0, 1e-3
            )
        finally:
            clients.stop()
    finally:
        web.stop()
    held = Figure(
        *CLIENTS, goal=GOALS[0], value=float(ok), details={"wanted": wanted, "snapshots": snapshots}
    )
    held.passed = ok >= 10_000
    memory = Figure(
        *MEMORY,
        goal=GOALS[1],
        value=per_client_kb,
        details={"rss_before": rss_before, "rss_after": rss_after, "clients": ok},
    )
    memory.passed = per_client_kb <= 40
    broadcast = Figure(
        *BROADCAST,
        goal=GOALS[2],
        value=broadcast_ms,
        details={"clients": ok, "reached": reached},
        loadgen_cpu=client_cores,
    )
    broadcast.passed = (
        broadcast_ms is not None and reached == ok and ok >= 10_000 and broadcast_ms <= 1000
    )
    return [held, memory, broadcast]


def _broadcast(
    ctx: BenchContext, checkout_id: str, clients: WsClients, expected: int
) -> tuple[float | None, int]:
    from sqlalchemy import select

    from app.db import db
    from models import CheckoutSession

    with ctx.app.app_context():
        checkout = db.session.execute(
            select(CheckoutSession)
            .where(CheckoutSession.id == uuid.UUID(checkout_id))
            .with_for_update()
        ).scalar_one()
        checkout.transition("processing")
        version = checkout.version
        t0 = monotonic_ns()
        db.session.commit()
        db.session.remove()
    reached = clients.wait_count(lambda r: r.get("version") == version, expected, timeout=30)
    times = [r["t"] for r in clients.records if r.get("version") == version]
    if not times:
        return None, 0
    return (max(times) - t0) / 1e6, reached
