"""Many websocket clients in one gevent process, timing every message they receive.

Run `python -m bench.wsclient` with a JSON spec on stdin (host, port, paths, count, connect
concurrency); it prints one JSON line per event on stdout, flushed at once, so the harness can
react while it runs:

    {"event": "message", "c": 3, "t": <CLOCK_MONOTONIC ns>, "type", "status", "version"}
    {"event": "connected", "ok": 10000, "failed": 0, "statuses": {...}}
    {"event": "closed", "c": 3, "code": 1000}

CLOCK_MONOTONIC is one clock for every process on the machine, so a timestamp taken by the
harness at commit and one taken here at receipt can be subtracted.

The clients answer the server's pings (the server drops a client that never pongs) and stop when
stdin closes or `max_seconds` pass. Only the frames a server sends are parsed (unmasked); the
pongs and close frames we send are masked, as RFC 6455 §5.3 requires of clients.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any


def monotonic_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def encode_client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, final frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def decode_frame(buf: bytes) -> tuple[int, bool, bytes, int] | None:
    """Parse one frame from `buf`: (opcode, fin, payload, bytes consumed), or None if incomplete."""
    if len(buf) < 2:
        return None
    fin = bool(buf[0] & 0x80)
    opcode = buf[0] & 0x0F
    masked = bool(buf[1] & 0x80)
    length = buf[1] & 0x7F
    pos = 2
    if length == 126:
        if len(buf) < 4:
            return None
        length = struct.unpack("!H", buf[2:4])[0]
        pos = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length = struct.unpack("!Q", buf[2:10])[0]
        pos = 10
    mask = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        mask = buf[pos : pos + 4]
        pos += 4
    if len(buf) < pos + length:
        return None
    payload = buf[pos : pos + length]
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, fin, payload, pos + length


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _client(index: int, host: str, port: int, path: str, headers: dict[str, str]) -> Any:
    """Open one websocket; return the socket and leftover bytes, or the HTTP status on refusal."""
    from gevent import socket as gsocket

    sock = gsocket.create_connection((host, port), timeout=30)
    sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ] + [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b"\r\n", 1)[0].split(b" ", 2)[1])
    if status != 101:
        sock.close()
        return status, None, b""
    sock.settimeout(None)
    return 101, sock, rest


def run(spec: dict[str, Any]) -> None:
    import gevent
    from gevent import os as gos
    from gevent.lock import BoundedSemaphore

    from bench.procs import raise_nofile_limit

    raise_nofile_limit()
    host, port = spec["host"], int(spec["port"])
    paths: list[str] = spec["paths"]
    count = int(spec.get("count", len(paths)))
    headers: dict[str, str] = spec.get("headers", {})
    report_messages = spec.get("report_messages", True)
    connect_gate = BoundedSemaphore(int(spec.get("connect_concurrency", 50)))
    statuses: Counter[str] = Counter()
    sockets: list[Any] = []

    def reader(index: int, sock: Any, buf: bytes) -> None:
        fragments = b""
        try:
            while True:
                frame = decode_frame(buf)
                if frame is None:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    continue
                opcode, fin, payload, used = frame
                buf = buf[used:]
                if opcode == 0x9:  # ping → pong with the same payload
                    sock.sendall(encode_client_frame(0xA, payload))
                elif opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    _emit({"event": "closed", "c": index, "code": code})
                    return
                elif opcode in (0x1, 0x0):
                    fragments += payload
                    if not fin:
                        continue
                    t = monotonic_ns()
                    text, fragments = fragments, b""
                    if report_messages:
                        _emit(_message_record(index, t, text))
        except OSError:
            return

    def connect(index: int) -> None:
        with connect_gate:
            try:
                status, sock, rest = _client(index, host, port, paths[index % len(paths)], headers)
            except OSError as exc:
                statuses[type(exc).__name__] += 1
                return
        statuses[str(status)] += 1
        if sock is not None:
            sockets.append(sock)
            reader(index, sock, rest)

    greenlets = [gevent.spawn(connect, i) for i in range(count)]
    deadline = time.monotonic() + float(spec.get("connect_timeout", 120))
    while sum(statuses.values()) < count and time.monotonic() < deadline:
        gevent.sleep(0.05)
    _emit(
        {
            "event": "connected",
            "ok": statuses.get("101", 0),
            "failed": count - statuses.get("101", 0),
            "statuses": dict(statuses),
        }
    )

    def wait_stdin() -> None:
        os.set_blocking(0, False)
        while True:
            try:
                data = gos.nb_read(0, 4096)
            except OSError:
                return
            if not data:
                return

    stopper = gevent.spawn(wait_stdin)
    stopper.join(timeout=float(spec.get("max_seconds", 600)))
    for sock in sockets:
        try:
            sock.sendall(encode_client_frame(0x8, struct.pack("!H", 1000)))
            sock.close()
        except OSError:
            pass
    gevent.killall(greenlets, timeout=5)


def _message_record(index: int, t: int, text: bytes) -> dict[str, Any]:
    record: dict[str, Any] = {"event": "message", "c": index, "t": t}
    try:
        message = json.loads(text)
    except ValueError:
        record["raw"] = text[:200].decode(errors="replace")
        return record
    data = message.get("data") if isinstance(message, dict) else None
    record["type"] = message.get("type") if isinstance(message, dict) else None
    if isinstance(data, dict):
        record["status"] = data.get("status")
        record["version"] = data.get("version")
        record["id"] = data.get("id")
    return record


class WsClients:
    """The harness's handle on a `python -m bench.wsclient` process and what it has received."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.records: list[dict[str, Any]] = []
        self.connected: dict[str, Any] | None = None
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WsClients:
        from bench.procs import ROOT, raise_nofile_limit

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.wsclient"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            preexec_fn=raise_nofile_limit,
            start_new_session=True,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(self.spec) + "\n").encode())
        self.proc.stdin.flush()
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                if record.get("event") == "connected":
                    self.connected = record
                else:
                    self.records.append(record)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def wait_connected(self, timeout: float) -> dict[str, Any]:
        with self._cond:
            self._cond.wait_for(
                lambda: self.connected is not None or not self._alive(), timeout=timeout
            )
            if self.connected is None:
                raise TimeoutError("websocket clients did not finish connecting")
            return self.connected

    def _alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, start: int = 0
    ) -> dict[str, Any] | None:
        """The first record from index `start` on that satisfies `predicate`, or None."""
        found: dict[str, Any] | None = None
        scanned = start

        def check() -> bool:
            nonlocal found, scanned
            while scanned < len(self.records):
                record = self.records[scanned]
                scanned += 1
                if predicate(record):
                    found = record
                    return True
            return not self._alive()

        with self._cond:
            self._cond.wait_for(check, timeout=timeout)
        return found

    def count(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        with self._cond:
            return sum(1 for r in self.records if predicate(r))

    def wait_count(
        self, predicate: Callable[[dict[str, Any]], bool], n: int, timeout: float
    ) -> int:
        """Wait until `n` records satisfy `predicate` (scanning each record once); the count."""
        seen = 0
        scanned = 0

        def check() -> bool:
            nonlocal seen, scanned
            while scanned < len(self.records):
                seen += bool(predicate(self.records[scanned]))
                scanned += 1
            return seen >= n or not self._alive()

        with self._cond:
            self._cond.wait_for(check, timeout=timeout)
            check()
            return seen

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


if __name__ == "__main__":
    run(json.loads(sys.stdin.readline()))
