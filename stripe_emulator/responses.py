"""What a handler answers: a status, a body and headers."""

from __future__ import annotations

import json
from typing import Any


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self, status: int, body: bytes, headers: tuple = (), content_type: str = "application/json"
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.content_type = content_type


def json_response(status: int, obj: Any, headers: tuple = ()) -> Response:
    return Response(status, json.dumps(obj).encode(), headers)
