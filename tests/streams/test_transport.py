"""The websocket transport leans on simple-websocket and wsproto internals: pin them here.

app/streams/transport.py replaces simple-websocket's reader thread with one that mirrors a turn
of `Base._thread`, drops wsproto's spent handshake, and writes pre-built frames straight to the
socket. None of that is public API, so an upgrade of either library must fail here first, with
a message saying what to re-check, not in production as a hung or corrupted stream.
"""

from __future__ import annotations

import hashlib
import inspect
import socket
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import pytest
import simple_websocket
import wsproto
import wsproto.connection
from simple_websocket.ws import Base
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Request, TextMessage

from app.streams import transport
from app.streams.hub import websocket_text_frame

# The versions whose internals transport.py was written against, and digests of the source of
# each function it mirrors or relies on. After an upgrade: read the new source of each function
# that changed, adapt transport.py, then update the pin and the digest.
PINNED = {"simple-websocket": "1.1.0", "wsproto": "1.3.2"}
MIRRORED = {
    # `_ReadWhenReadable` is a `thread_class`: built with `target=self._thread`, renamed, started.
    "simple_websocket.ws.Base.__init__": (Base.__init__, "25f57ef0b5f87780"),
    # `_ReadWhenReadable._read` does what one turn of this loop does.
    "simple_websocket.ws.Base._thread": (Base._thread, "da9a912028a48435"),
    # Called by the reader after feeding data: answers pings and closes, sets `event`.
    "simple_websocket.ws.Base._handle_events": (Base._handle_events, "fa982a271583fe76"),
    # `forget_handshake`: events() still asks the handshake after the upgrade.
    "wsproto.WSConnection.events": (WSConnection.events, "d9e36e535855009e"),
    "wsproto.WSConnection.__init__": (WSConnection.__init__, "c75e65b5cf90e6d3"),
    # `plain_framing` reads `connection._proto.extensions`.
    "wsproto.connection.Connection.__init__": (
        wsproto.connection.Connection.__init__,
        "2aa4c1439d32bd59",
    ),
}


def _digest(fn: Any) -> str:
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]


class TestPinnedLibraries:
    @pytest.mark.parametrize("package", sorted(PINNED))
    def test_the_installed_version_is_the_one_the_transport_was_written_for(
        self, package: str
    ) -> None:
        assert version(package) == PINNED[package], (
            f"{package} changed: re-check app/streams/transport.py against its internals"
        )
        requirements = Path(__file__).parents[2].joinpath("requirements.txt").read_text()
        assert f"{package}=={PINNED[package]}" in requirements.splitlines()

    @pytest.mark.parametrize("name", sorted(MIRRORED))
    def test_the_internals_it_mirrors_are_unchanged(self, name: str) -> None:
        fn, expected = MIRRORED[name]
        assert _digest(fn) == expected, (
            f"{name} changed: app/streams/transport.py mirrors it; review and update the digest"
        )


class _Captured:
    """A `thread_class` that only records what simple-websocket hands it."""

    instances: ClassVar[list[_Captured]] = []

    def __init__(self, target: Any) -> None:
        self.target = target
        self.name = "captured(_thread)"
        self.started = False
        _Captured.instances.append(self)

    def start(self) -> None:
        self.started = True


def _open_server() -> tuple[simple_websocket.Server, WSConnection, socket.socket]:
    """A real simple-websocket Server on one end of a socket pair, a wsproto client on the other."""
    server_sock, client_sock = socket.socketpair()
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(Request(host="localhost", target="/"))
    headers = dict(
        line.split(": ", 1) for line in request.decode().split("\r\n")[1:] if ": " in line
    )
    environ = {"werkzeug.socket": server_sock}
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    ws = simple_websocket.Server(environ, thread_class=_Captured, max_message_size=4096)
    client.receive_data(client_sock.recv(65536))
    assert any(isinstance(e, AcceptConnection) for e in client.events())
    return ws, client, client_sock


class TestTheInternalsAtWork:
    def test_a_thread_class_gets_the_bound_receive_loop_and_is_started(self) -> None:
        ws, _client, client_sock = _open_server()
        reader = _Captured.instances[-1]
        assert reader.started and reader.target.__self__ is ws
        assert ws.thread is reader
        for attribute in ("sock", "ws", "event", "connected", "input_buffer", "pong_received"):
            assert hasattr(ws, attribute), attribute
        assert isinstance(ws.receive_bytes, int)
        client_sock.close()
        ws.sock.close()

    def test_feeding_data_and_handling_events_as_the_reader_does(self) -> None:
        ws, client, client_sock = _open_server()
        transport.forget_handshake(ws)
        ws.ws.receive_data(client.send(TextMessage("hello")) + client.send(Ping(b"p")))
        assert ws._handle_events() is True
        assert ws.event.is_set() and ws.input_buffer == ["hello"]
        # The ping was answered by simple-websocket itself, through the socket.
        client.receive_data(client_sock.recv(65536))
        assert [type(e).__name__ for e in client.events()] == ["Pong"]
        assert transport.client_gone(ws) is False and ws.input_buffer == []
        client_sock.close()
        ws.sock.close()

    @pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
    def test_pre_built_frames_are_what_wsproto_would_send(self, size: int) -> None:
        ws, _client, client_sock = _open_server()
        assert transport.plain_framing(ws)
        text = "x" * size
        assert websocket_text_frame(text) == ws.ws.send(TextMessage(text))
        assert ws.ws.send(Ping()) == transport.PING_FRAME
        client_sock.close()
        ws.sock.close()
