"""An HTTP/1.1 keep-alive load generator on gevent, run as one or more processes of its own.

Why not `requests` in threads: on a 2-core machine the load generator competes with the server
for CPU, so it must spend as little as possible per request — a hand-rolled request line on a
kept-alive socket and a minimal response parser cost a few microseconds; each child process
reports the CPU it used so every figure shows what the generator took.

Two modes:
- closed loop: C connections each send the next request as soon as the previous one answers —
  the saturation throughput;
- open loop: requests are *scheduled* at a fixed rate and latency is measured from the scheduled
  time, not the send time, so a slow server cannot hide its queueing delay ("coordinated
  omission").

Run `python -m bench.loadgen SPEC.json`; it prints one JSON result on stdout.
The harness calls `run_load(spec, processes=N)`, which starts N children and merges them.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.procs import ROOT
from tests.support.stripe_webhooks import envelope, signature_header

LATENCY_SAMPLE_CAP = 200_000  # per child, so a long saturation run cannot exhaust memory


# ----------------------------------------------------------------------------- request factories
def _request_bytes(
    method: str, path: str, host: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def make_factory(spec: dict[str, Any], host: str, child: int, children: int) -> Iterator[bytes]:
    """Yield raw requests forever for the request spec `spec["request"]`."""
    req = spec["request"]
    kind = req["kind"]
    if kind == "static":
        # One path, rotating through `authorizations` (several tokens) if given.
        auths = req.get("authorizations") or [None]
        body = json.dumps(req["json"]).encode() if "json" in req else b""
        prebuilt = []
        for auth in auths:
            headers = dict(req.get("headers", {}))
            if auth:
                headers["Authorization"] = auth
            if body:
                headers["Content-Type"] = "application/json"
            prebuilt.append(
                _request_bytes(req.get("method", "GET"), req["path"], host, headers, body)
            )
        return itertools.cycle(prebuilt)
    if kind == "stripe_webhook":
        return _webhook_requests(req, host, child, children)
    if kind == "checkout_create":
        return _checkout_requests(req, host, child)
    if kind == "track_usage":
        return _track_usage_requests(req, host, child)
    raise ValueError(f"unknown request kind {kind!r}")


def _webhook_requests(req: dict[str, Any], host: str, child: int, children: int) -> Iterator[bytes]:
    """Signed events with unique ids; `objects` (if given) are split between the children."""
    secret = req["secret"]
    prefix = req.get("id_prefix") or uuid.uuid4().hex[:10]
    objects: list[dict[str, Any]] = req.get("objects") or []
    mine = objects[child::children] if objects else []
    # (event type, object) pairs taken in turn; each event gets its own object id.
    templates: list[tuple[str, dict[str, Any]]] = [
        (event_type, obj) for event_type, obj in req.get("templates") or []
    ] or [
        (req["event_type"], req.get("object") or {"id": "pi_unknown", "object": "payment_intent"})
    ]
    for seq in itertools.count():
        event_type, template = templates[seq % len(templates)]
        if mine:
            if seq >= len(mine):
                return
            obj = mine[seq]
        else:
            obj = {**template, "id": f"{template['id']}_{child}_{seq}"}
        event = envelope(event_type, obj, event_id=f"evt_{prefix}_{child}_{seq}")
        payload = json.dumps(event, separators=(",", ":"))
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": signature_header(payload, secret),
        }
        yield _request_bytes(
            "POST", req.get("path", "/stripe/webhooks"), host, headers, payload.encode()
        )


def _track_usage_requests(req: dict[str, Any], host: str, child: int) -> Iterator[bytes]:
    """`POST {path}` usage events, rotating buyers, a fresh `idempotency_key` each time."""
    authorizations: list[str] = req["authorizations"]
    prefix = uuid.uuid4().hex[:8]
    for seq in itertools.count():
        body = json.dumps(
            {
                "feature_key": req["feature_key"],
                "quantity": 1,
                "idempotency_key": f"bench-{prefix}-{child}-{seq}",
            }
        ).encode()
        headers = {
            "Authorization": authorizations[seq % len(authorizations)],
            "Content-Type": "application/json",
        }
        yield _request_bytes("POST", req["path"], host, headers, body)


def _checkout_requests(req: dict[str, Any], host: str, child: int) -> Iterator[bytes]:
    """`POST /v1/checkout/create`, rotating buyers, a fresh `Idempotency-Key` each time."""
    tokens: list[str] = req["tokens"]
    body = json.dumps({"price_id": req["price_id"]}).encode()
    for seq in itertools.count():
        headers = {
            "Authorization": f"Bearer {tokens[seq % len(tokens)]}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"bench-{child}-{seq}-{uuid.uuid4().hex[:8]}",
        }
        yield _request_bytes("POST", "/v1/checkout/create", host, headers, body)


# ----------------------------------------------------------------------------- HTTP client
class Connection:
    """One kept-alive HTTP/1.1 connection (gevent socket)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: Any = None
        self.buf = b""

    def _connect(self) -> None:
        from gevent import socket as gsocket

        self.sock = gsocket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self._connect()
        try:
            self.sock.sendall(raw)
            return self._read_response()
        except Exception:
            self.close()
            raise

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _read_response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = self._read_chunked()
        else:
            length = int(headers.get(b"content-length", b"0"))
            while len(self.buf) < length:
                self._recv()
            body, self.buf = self.buf[:length], self.buf[length:]
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, body

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                self._recv()
            size_line, self.buf = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(self.buf) < size + 2:
                self._recv()
            body += self.buf[:size]
            self.buf = self.buf[size + 2 :]
            if size == 0:
                return body


# ----------------------------------------------------------------------------- one child
@dataclass
class ChildResult:
    latencies_ms: list[float] = field(default_factory=list)
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    exhausted: bool = False

    def record(self, status: int | None, latency_ms: float, ok_statuses: set[int]) -> None:
        if status is not None and status in ok_statuses:
            self.ok += 1
            if len(self.latencies_ms) < LATENCY_SAMPLE_CAP:
                self.latencies_ms.append(latency_ms)
        else:
            self.errors[str(status) if status is not None else "connection"] += 1


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    import gevent
    from gevent.queue import Queue

    host, port = spec["host"], spec["port"]
    child, children = spec.get("child", 0), spec.get("children", 1)
    duration = float(spec["duration"])
    connections = max(1, int(spec["connections"]))
    ok_statuses = set(spec.get("ok_statuses", [200]))
    timeout = float(spec.get("timeout", 10.0))
    factory = make_factory(spec, f"{host}:{port}", child, children)
    result = ChildResult()
    conns = [Connection(host, port, timeout) for _ in range(connections)]

    # Everyone starts at the same wall-clock instant, so N children add up to one load.
    delay = float(spec.get("start_at", time.time())) - time.time()
    if delay > 0:
        time.sleep(delay)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    deadline = start + duration

    def next_request() -> bytes | None:
        try:
            return next(factory)
        except StopIteration:
            result.exhausted = True
            return None

    def send(conn: Connection, raw: bytes, t0: float) -> None:
        status: int | None
        try:
            status, _ = conn.request(raw)
        except Exception:
            status = None
        result.record(status, (time.perf_counter() - t0) * 1000.0, ok_statuses)

    if spec["mode"] == "closed":

        def loop(conn: Connection) -> None:
            while time.perf_counter() < deadline:
                raw = next_request()
                if raw is None:
                    return
                send(conn, raw, time.perf_counter())

        gevent.joinall([gevent.spawn(loop, c) for c in conns])
    else:
        interval = 1.0 / float(spec["rate"])
        queue: Queue = Queue()

        def schedule() -> None:
            for i in itertools.count():
                at = start + i * interval
                if at >= deadline:
                    break
                pause = at - time.perf_counter()
                if pause > 0:
                    gevent.sleep(pause)
                raw = next_request()
                if raw is None:
                    break
                queue.put((raw, at))
            for _ in conns:
                queue.put(None)

        def worker(conn: Connection) -> None:
            while True:
                item = queue.get()
                if item is None:
                    return
                send(conn, item[0], item[1])

        workers = [gevent.spawn(worker, c) for c in conns]
        gevent.spawn(schedule)
        gevent.joinall(workers, timeout=duration + timeout + 5)
        gevent.killall(workers)
    result.elapsed = time.perf_counter() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_seconds = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    for conn in conns:
        conn.close()
    return {
        "latencies_ms": result.latencies_ms,
        "ok": result.ok,
        "errors": dict(result.errors),
        "elapsed": result.elapsed,
        "cpu_seconds": result.cpu_seconds,
        "exhausted": result.exhausted,
    }


# ----------------------------------------------------------------------------- the parent side
@dataclass
class LoadResult:
    ok: int
    errors: dict[str, int]
    elapsed: float
    latencies_ms: list[float]
    cpu_seconds: float
    exhausted: bool = False

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def loadgen_cores(self) -> float:
        """CPU the generator used, in cores (1.0 = one full core)."""
        return self.cpu_seconds / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def merge(results: list[dict[str, Any]]) -> LoadResult:
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    for r in results:
        errors.update(r["errors"])
        latencies.extend(r["latencies_ms"])
    return LoadResult(
        ok=sum(r["ok"] for r in results),
        errors=dict(errors),
        elapsed=max((r["elapsed"] for r in results), default=0.0),
        latencies_ms=latencies,
        cpu_seconds=sum(r["cpu_seconds"] for r in results),
        exhausted=any(r.get("exhausted") for r in results),
    )


def run_load(spec: dict[str, Any], processes: int = 2) -> LoadResult:
    """Run `spec` in `processes` generator processes at once and merge what they measured.

    `spec`: host, port, mode ("closed" | "open"), duration (s), connections (total), rate
    (total, open loop), request ({kind: static|stripe_webhook|checkout_create, ...}),
    ok_statuses, timeout.
    """
    processes = max(1, processes)
    start_at = time.time() + 0.5 + 0.1 * processes
    children = []
    spec_files: list[str] = []
    for child in range(processes):
        part = {
            **spec,
            "child": child,
            "children": processes,
            "start_at": start_at,
            "connections": max(1, int(spec["connections"]) // processes),
        }
        if spec["mode"] == "open":
            part["rate"] = float(spec["rate"]) / processes
        # The spec goes through a file: it may carry thousands of Stripe objects.
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec_file:
            json.dump(part, spec_file)
        spec_files.append(spec_file.name)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", spec_file.name],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        children.append(proc)
    outputs = []
    limit = float(spec["duration"]) + float(spec.get("timeout", 10.0)) + 30
    for proc in children:
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed: {err.decode(errors='replace')[-2000:]}")
        outputs.append(json.loads(out))
    for name in spec_files:
        os.unlink(name)
    return merge(outputs)


def _main() -> None:
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    json.dump(run_child(spec), sys.stdout)


if __name__ == "__main__":
    _main()
