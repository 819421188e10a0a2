"""Tighten the app's abuse limits for one test (they are Settings, read on every request)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from flask import Flask


@contextlib.contextmanager
def configured_limits(app: Flask, **rules: str) -> Iterator[None]:
    settings = app.config["BILLINGOS"]
    app.config["BILLINGOS"] = dataclasses.replace(
        settings, rate_limits={**settings.rate_limits, **rules}
    )
    try:
        yield
    finally:
        app.config["BILLINGOS"] = settings
