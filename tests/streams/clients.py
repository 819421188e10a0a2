"""Minimal real-time clients for the tests: a websocket reader and an SSE reader.

Both talk to a real gunicorn server over TCP (websocket-client and requests), read until the
server ends the stream, and record what arrived in order.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import requests
import websocket


class StatusSocket:
    """A websocket client that collects JSON text frames and the close code."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 20):
        header = [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.ws = websocket.create_connection(url, header=header, timeout=timeout)
        self.frames: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None

    def next_frame(self) -> dict[str, Any] | None:
        """The next JSON frame, or None once the server has closed (see `close_code`)."""
        while self.close_code is None:
            opcode, frame = self.ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                message: dict[str, Any] = json.loads(frame.data)
                self.frames.append(message)
                return message
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data or b""
                self.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                self.close_reason = data[2:].decode(errors="replace")
                self.ws.close()
        return None

    def until_status(self, status: str) -> dict[str, Any]:
        while True:
            frame = self.next_frame()
            if frame is None:
                raise AssertionError(f"closed ({self.close_code}) before {status}: {self.frames}")
            if frame["data"].get("status") == status:
                return frame

    def until_closed(self) -> list[dict[str, Any]]:
        while self.next_frame() is not None:
            pass
        return self.frames

    def close(self) -> None:
        self.ws.close()


class EventStream:
    """An SSE client: parses `id`/`event`/`data` events and `: ping` comments."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 20):
        self.response = requests.get(url, headers=headers, stream=True, timeout=timeout)
        self.status_code = self.response.status_code
        self.events: list[dict[str, Any]] = []
        self.ended = False
        self._lines = self.response.iter_lines(decode_unicode=True)

    def next_event(self) -> dict[str, Any] | None:
        event: dict[str, Any] = {}
        for line in self._lines:
            if line == "":
                if "data" in event:
                    event["data"] = json.loads(event["data"])
                    self.events.append(event)
                    return event
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            event[name] = value
        self.ended = True
        return None

    def until_status(self, status: str) -> dict[str, Any]:
        while True:
            event = self.next_event()
            if event is None:
                raise AssertionError(f"ended before {status}: {self.events}")
            if event["data"]["status"] == status:
                return event

    def until_end(self) -> list[dict[str, Any]]:
        while self.next_event() is not None:
            pass
        return self.events

    def close(self) -> None:
        self.response.close()
