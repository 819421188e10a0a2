"""Logging that cannot leak credentials.

A filter masks anything shaped like a secret key, session token, Stripe key, webhook secret or
client secret in every record, as a last line of defence behind code that never logs them.
"""

from __future__ import annotations

import logging
import re

_SECRET_PATTERNS = re.compile(
    r"(bos_(?:sk|st)_[A-Za-z0-9_\-]+"
    r"|(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+"
    r"|whsec_[A-Za-z0-9_]+"
    r"|(?:pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"
    r"|token=[^&\s\"']+)"
)


def redact(text: str) -> str:
    return _SECRET_PATTERNS.sub(lambda m: m.group(0)[:7] + "…[redacted]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
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
