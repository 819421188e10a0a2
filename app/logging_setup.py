"""Logging that cannot leak credentials.

A filter masks anything shaped like a secret key, session token, Stripe key, webhook secret or
client secret in every record, as a last line of defence behind code that never logs them.
"""

from __future__ import annotations

import logging
import re

_SECRET_PATTERNS = re.compile(
    r"(bos_(?:sk|st|session)_[A-Za-z0-9_\-]+"
    r"|(?:sk|rk)_(?:test|live)_[A-Za-z0-9_\-]+"
    r"|whsec_[A-Za-z0-9_]+"
    r"|(?:pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"
    r"|token=[^&\s\"']+)"
)


def redact(text: str) -> str:
    return _SECRET_PATTERNS.sub(lambda m: m.group(0)[:7] + "…[redacted]", text)


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


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level)
    # The stripe library logs request lines at INFO/DEBUG; keep it quiet.
    logging.getLogger("stripe").setLevel(logging.WARNING)
