"""Decoding of Stripe's form-encoded parameters (``a[b][0][c]=v``) into nested dicts/lists."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY_RE = re.compile(r"\[([^\]]*)\]")


class FormError(ValueError):
    """Raised for a parameter name that cannot be decoded."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _split_key(key: str) -> list[str]:
    bracket = key.find("[")
    if bracket < 0:
        return [key]
    head = key[:bracket]
    rest = key[bracket:]
    parts = _KEY_RE.findall(rest)
    if "".join(f"[{p}]" for p in parts) != rest or not head:
        raise FormError(key, f"Invalid parameter name: {key}")
    return [head, *parts]


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are all list indices (or the ``[]`` marker) into lists."""
    if isinstance(node, dict):
        for k, v in list(node.items()):
            node[k] = _listify(v)
        if node and all(isinstance(k, int) for k in node):
            return [node[k] for k in sorted(node)]
        return node
    return node


def decode_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Build nested params from ``(key, value)`` pairs; ``a[]`` appends, ``a[0]`` indexes."""
    root: dict[Any, Any] = {}
    appended: dict[int, int] = {}
    for key, value in pairs:
        if "[" not in key:
            root[key] = value
            continue
        parts = _split_key(key)
        node: dict[Any, Any] = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if part == "":
                idx = appended.get(id(node), 0)
                appended[id(node)] = idx + 1
                part_key: Any = idx
            elif part.isdigit() and depth > 0:
                part_key = int(part)
            else:
                part_key = part
            if last:
                node[part_key] = value
            else:
                child = node.get(part_key)
                if not isinstance(child, dict):
                    child = {}
                    node[part_key] = child
                node = child
    return _listify(root)


def decode(raw: str) -> dict[str, Any]:
    """Decode a query string or ``application/x-www-form-urlencoded`` body."""
    if not raw:
        return {}
    return decode_pairs(parse_qsl(raw, keep_blank_values=True))


def canonical(raw: str) -> tuple[tuple[str, str], ...]:
    """An order-independent fingerprint of raw form params (for idempotency comparisons)."""
    return tuple(sorted(parse_qsl(raw, keep_blank_values=True)))
