"""Flower (scripts/flower.sh, the Procfile's `flower`) never listens without authentication."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.processes import ManagedProcess
from tests.support.server import free_port

EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 — asking Flower for it is the point of these tests


def _outward_address() -> str | None:
    # The address other machines would reach this one on (no packet is sent for UDP connect).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("192.0.2.123", 9))
        address: str = probe.getsockname()[0]
        return None if address.startswith("127.") else address
    return None


@contextlib.contextmanager
def _flower(**env: str) -> Iterator[int]:
    port = free_port()
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    proc = ManagedProcess(
        ["bash", "scripts/flower.sh"],
        env={**env, "FLOWER_PORT": str(port), "PATH": path},
        name="flower",
    ).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/healthcheck", timeout=2)
                break
            if not proc.running:
                raise RuntimeError(f"flower exited:\n{proc.log()[-3000:]}")
            time.sleep(0.2)
        else:
            raise TimeoutError(f"flower did not answer:\n{proc.log()[-3000:]}")
        yield port
    finally:
        proc.stop()


def test_with_basic_auth_every_page_asks_for_it():
    with _flower(FLOWER_BASIC_AUTH="ops:s3cret-pass", FLOWER_ADDRESS=EVERY_INTERFACE) as port:
        url = f"http://127.0.0.1:{port}/workers"
        assert requests.get(url, timeout=5).status_code == 401
        assert requests.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
        assert requests.get(url, auth=("ops", "s3cret-pass"), timeout=5).status_code == 200


def test_without_basic_auth_it_listens_on_loopback_only():
    outward = _outward_address()
    if outward is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    # Even when asked for every interface: no credential means loopback only.
    with _flower(FLOWER_ADDRESS=EVERY_INTERFACE) as port:
        assert requests.get(f"http://127.0.0.1:{port}/workers", timeout=5).status_code == 200
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{outward}:{port}/workers", timeout=5)
