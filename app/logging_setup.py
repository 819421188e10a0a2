"""Logging: one JSON object per line, tagged with what it is about, that cannot leak credentials.

Web, worker and beat processes log alike (Celery's own logging set-up is replaced through its
`setup_logging` signal, so the same handler, filters and format apply in workers). Each line
carries the ids bound for the current request or task: `request_id` (from an incoming
`X-Request-Id`, or generated, and handed to every task the request enqueues),
`organization_id`, `checkout_id`, `stripe_event_id`, and in workers `task` and `task_id`.

A filter masks anything shaped like a secret key, session token, Stripe key, webhook secret,
client secret, email address or card number in every record, as a last line of defence behind
code that never logs them.
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from functools import cache
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_SECRET_PATTERNS = re.compile(
    r"(bos_(?:sk|st|session)_[A-Za-z0-9_\-]+"
    r"|(?:sk|rk)_(?:test|live)_[A-Za-z0-9_\-]+"
    r"|whsec_[A-Za-z0-9_]+"
    r"|(?:pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"
    r"|token=[^&\s\"']+)"
)
# Personal data: an address is replaced whole (its first characters are the person's name),
# and so is anything shaped like a card number (13-19 digits, optionally grouped).
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_CARD_NUMBER = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")


def redact(text: str) -> str:
    text = _SECRET_PATTERNS.sub(lambda m: m.group(0)[:7] + "…[redacted]", text)
    if "@" in text:
        text = _EMAIL.sub("[email redacted]", text)
    return _CARD_NUMBER.sub("[number redacted]", text)


class RedactingFilter(logging.Filter):
    """Masks secrets in the message and in any traceback or stack attached to the record.

    Exception texts matter most: SQL errors carry their bound parameters and Stripe errors can
    quote client secrets.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# --------------------------------------------------------------------------- context ids

CONTEXT_FIELDS = (
    "request_id",
    "organization_id",
    "checkout_id",
    "stripe_event_id",
    "task",
    "task_id",
)
# Context carried from a request into the tasks it enqueues (as task message headers).
PROPAGATED_FIELDS = ("request_id", "organization_id", "checkout_id", "stripe_event_id")
HEADER_PREFIX = "billingos_"

_context: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"billingos_log_{name}", default=None) for name in CONTEXT_FIELDS
}

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def sane_request_id(candidate: str | None) -> str:
    """The caller's request id when it is a short token, else a fresh one.

    A client-chosen id goes into every log line of the request: anything long or with
    spaces, quotes or control characters could forge or bloat log lines, so it is replaced.
    """
    if candidate and _SANE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex


def bind(**values: Any) -> dict[str, Token[str | None]]:
    """Tag the log lines that follow (in this request, task or greenlet) with these ids."""
    tokens = {}
    for name, value in values.items():
        if value is not None:
            tokens[name] = _context[name].set(str(value))
    return tokens


def unbind(tokens: Mapping[str, Token[str | None]]) -> None:
    for name, token in tokens.items():
        try:
            _context[name].reset(token)
        except ValueError:
            # Bound in another context (a greenlet or thread that ended first): just clear it.
            _context[name].set(None)


def clear() -> None:
    for var in _context.values():
        var.set(None)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    tokens = bind(**values)
    try:
        yield
    finally:
        unbind(tokens)


def current_task() -> str | None:
    return _context["task"].get()


def current_context() -> dict[str, str]:
    values = {name: value for name, var in _context.items() if (value := var.get()) is not None}
    if "organization_id" not in values:
        organization_id = _request_organization_id()
        if organization_id is not None:
            values["organization_id"] = organization_id
    return values


def _request_organization_id() -> str | None:
    # Authentication stores the caller's organization on `g`; reading it here (only when a
    # line is written) keeps the authentication path free of logging concerns.
    from flask import g, has_app_context

    if not has_app_context():
        return None
    organization_id = g.get("organization_id")
    return None if organization_id is None else str(organization_id)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_context().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            # gunicorn writes its access line after the request's context is gone; the id is
            # still in the response headers it formats the line from.
            request_id = record.args.get("{x-request-id}o")
            if request_id and not hasattr(record, "request_id"):
                record.request_id = request_id
        return True


# gunicorn's own loggers (`logconfig_dict` in gunicorn.conf.py): the same JSON lines.
GUNICORN_LOGCONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "app.logging_setup.ContextFilter"},
        "redact": {"()": "app.logging_setup.RedactingFilter"},
    },
    "formatters": {"json": {"()": "app.logging_setup.JsonLineFormatter"}},
    "handlers": {
        "json": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context", "redact"],
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "INFO", "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
        # On the logger as well: it must read the access line's atoms before a redacting
        # filter added to the logger (gunicorn.conf.py) replaces them.
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["json"],
            "filters": ["context"],
            "propagate": False,
        },
    },
}


_MASKED = frozenset({"message", "exc_info", "stack_info", *CONTEXT_FIELDS})


def _redact_value(value: Any) -> Any:
    # Celery passes task arguments as `extra={"data": {...}}`.
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


class JsonLineFormatter(JsonFormatter):
    """`{"time", "level", "logger", "message", <ids>, "exc_info"}`, secrets masked."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )

    def formatException(self, ei: Any) -> str:
        return redact(str(super().formatException(ei)))

    def formatStack(self, stack_info: str) -> str:
        return redact(str(super().formatStack(stack_info)))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # Fields passed with `extra=` are not part of the message the filter masked (masking
        # the message again would mask the mask).
        return {
            key: value if key in _MASKED else _redact_value(value)
            for key, value in log_data.items()
        }


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
        handler.addFilter(ContextFilter())
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level)
    # Warnings (deprecations and the like) become log lines too, not free text on stderr.
    logging.captureWarnings(True)
    # The stripe library logs request lines at INFO/DEBUG; keep it quiet.
    logging.getLogger("stripe").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- Celery wiring


def _celery_setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """Celery's `setup_logging` signal: a receiver means Celery leaves logging to us.

    Without it, the worker replaces the root logger's handlers with its own plain-text ones,
    and the redaction filter with them.
    """
    configure_logging(logging.getLevelName(loglevel) if isinstance(loglevel, int) else "INFO")


def context_headers() -> dict[str, str]:
    """The ids of the request (or task) that enqueues, as task message headers."""
    return {
        HEADER_PREFIX + name: value
        for name, value in current_context().items()
        if name in PROPAGATED_FIELDS
    }


def _add_context_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """`before_task_publish`: the ids of the request (or task) that enqueues, in the message."""
    if headers is None:
        return
    for name, value in context_headers().items():
        headers.setdefault(name, value)


@cache
def _id_parameters(task_name: str, fn: Any) -> tuple[tuple[int, str], ...]:
    # Which positional arguments of a task are ids worth tagging its lines with.
    try:
        parameters = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()
    return tuple(
        (index, name) for index, name in enumerate(parameters) if name in PROPAGATED_FIELDS
    )


_TASK_TOKENS = "_billingos_log_tokens"


def _bind_task_context(
    task_id: str | None = None,
    task: Any = None,
    args: tuple[Any, ...] | None = None,
    kwargs: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """`task_prerun`: bind the enqueuing request's ids, the task's own, and its id arguments."""
    if task is None:
        return
    request = task.request
    values: dict[str, Any] = {"task": task.name, "task_id": task_id}
    for name in PROPAGATED_FIELDS:
        value = getattr(request, HEADER_PREFIX + name, None)
        if value is None and request.headers:
            value = request.headers.get(HEADER_PREFIX + name)
        if value is not None:
            values[name] = value
    for index, name in _id_parameters(task.name, task.run):
        if args is not None and index < len(args):
            values[name] = args[index]
        elif kwargs and name in kwargs:
            values[name] = kwargs[name]
    # A task enqueued by beat or another task has no request: its own id stands in.
    values.setdefault("request_id", task_id)
    setattr(request, _TASK_TOKENS, bind(**values))


def _unbind_task_context(task: Any = None, **_: Any) -> None:
    """`task_postrun`: a pool process runs many tasks; the next must not inherit these ids."""
    tokens = getattr(task.request, _TASK_TOKENS, None) if task is not None else None
    if tokens:
        unbind(tokens)
    else:
        clear()


def connect_celery_signals() -> None:
    from celery import signals

    signals.setup_logging.connect(_celery_setup_logging, weak=False)
    signals.before_task_publish.connect(_add_context_headers, weak=False)
    signals.task_prerun.connect(_bind_task_context, weak=False)
    signals.task_postrun.connect(_unbind_task_context, weak=False)


# --------------------------------------------------------------------------- Flask wiring

REQUEST_ID_HEADER = "X-Request-Id"


def bind_to_request(**values: Any) -> None:
    """`bind()` for the rest of the current request only (undone when it ends)."""
    from flask import g

    g.setdefault("log_tokens", {}).update(bind(**values))


def init_request_logging(app: Any) -> None:
    """Bind a request id (and the checkout in the URL) for each request; echo the id back."""
    from flask import g, request

    @app.before_request
    def _bind_request() -> None:
        request_id = sane_request_id(request.headers.get(REQUEST_ID_HEADER))
        view_args = request.view_args or {}
        g.log_tokens = bind(request_id=request_id, checkout_id=view_args.get("checkout_id"))
        g.request_id = request_id

    @app.after_request
    def _echo_request_id(response: Any) -> Any:
        request_id = g.get("request_id")
        if request_id is not None:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    @app.teardown_request
    def _unbind_request(_exc: BaseException | None) -> None:
        tokens = g.pop("log_tokens", None)
        if tokens:
            unbind(tokens)
