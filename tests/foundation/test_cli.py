from __future__ import annotations

import json

from sqlalchemy import select

from app.auth import resolve_secret_key
from app.db import db
from models import Organization


def test_create_org_prints_a_working_key(app, app_context):
    result = app.test_cli_runner().invoke(args=["billingos", "create-org", "Shop", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    principal = resolve_secret_key(data["secret_key"])
    assert str(principal.organization_id) == data["organization_id"]


def test_seed_demo_is_idempotent_and_has_every_kind_of_price(app, app_context):
    runner = app.test_cli_runner()
    first = json.loads(runner.invoke(args=["billingos", "seed-demo", "--json"]).output)
    second = json.loads(runner.invoke(args=["billingos", "seed-demo", "--json"]).output)
    assert first["organization_id"] == second["organization_id"]
    assert first["secret_key"] != second["secret_key"]
    assert len(db.session.execute(select(Organization)).all()) == 1
    prices = [p for product in second["products"] for p in product["prices"]]
    kinds = {
        (p["type"], p["interval"], bool(p["trial_period_days"]), p["amount"] == 0) for p in prices
    }
    assert ("recurring", "month", False, False) in kinds
    assert ("recurring", "year", False, False) in kinds
    assert ("one_time", None, False, False) in kinds
    assert ("recurring", "month", True, False) in kinds
    assert ("recurring", "month", False, True) in kinds
    token = json.loads(runner.invoke(args=["billingos", "session-token", "--json"]).output)
    assert token["token"].startswith("bos_session_test_")
