"""The demo catalog: what `flask billingos seed-demo` sells, and the catalog the test scenarios
buy from. One of each kind of price: monthly + yearly, a trial, one-time, free."""

from __future__ import annotations

from typing import Any

DEMO_PRODUCTS: list[dict[str, Any]] = [
    {
        "name": "Pro",
        "description": "Everything in the app, billed monthly or yearly.",
        "features": [
            {"key": "pro", "name": "Pro features"},
            {"key": "export", "name": "Export"},
        ],
        "prices": [
            {"amount": 1200, "currency": "usd", "interval": "month"},
            {"amount": 12000, "currency": "usd", "interval": "year"},
        ],
    },
    {
        "name": "Team (14-day trial)",
        "description": "Try it free for 14 days, then monthly.",
        "features": [{"key": "team", "name": "Team workspace"}],
        "prices": [
            {"amount": 4900, "currency": "usd", "interval": "month", "trial_period_days": 14}
        ],
    },
    {
        "name": "Lifetime export pack",
        "description": "A one-time purchase.",
        "features": [{"key": "export", "name": "Export"}],
        "prices": [{"amount": 2900, "currency": "usd"}],
    },
    {
        "name": "Free",
        "description": "The free plan.",
        "features": [{"key": "basic", "name": "Basic features"}],
        "prices": [{"amount": 0, "currency": "usd", "interval": "month"}],
    },
]
