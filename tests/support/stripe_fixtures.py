"""Stripe's official example objects (tests/fixtures/stripe/fixtures3.json, see its README)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STRIPE_FIXTURES = ROOT / "tests" / "fixtures" / "stripe" / "fixtures3.json"
# The team's shared copy, beside the repository, when it is there.
SHARED_STRIPE_FIXTURES = ROOT.parent / "shared" / "stripe" / "fixtures3.json"


@cache
def stripe_fixture_resources() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(STRIPE_FIXTURES.read_text())["resources"]
    return resources
