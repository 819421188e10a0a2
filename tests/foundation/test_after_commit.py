"""Tasks are enqueued only after their transaction commits, and never after a rollback."""

from __future__ import annotations

import base64
import json

from flask import current_app

from app import jobs
from app.db import db, on_commit
from app.jobs import enqueue_after_commit

QUEUE = "celery"


def _queued(redis_client) -> list[dict]:
    messages = [json.loads(m) for m in redis_client.lrange(QUEUE, 0, -1)]
    return [m["headers"] for m in messages]


def test_task_is_sent_only_after_commit(app_context, redis_client):
    session = db.session()
    enqueue_after_commit(session, "test.after_commit", "id-1")
    assert _queued(redis_client) == []
    session.commit()
    headers = _queued(redis_client)
    assert [(h["task"], h["argsrepr"]) for h in headers] == [("test.after_commit", "('id-1',)")]


def test_task_is_dropped_on_rollback(app_context, redis_client):
    session = db.session()
    enqueue_after_commit(session, "test.after_commit", "id-2")
    session.rollback()
    session.commit()
    assert _queued(redis_client) == []


def test_hooks_run_once_for_the_outermost_commit_only(app_context):
    session = db.session()
    calls: list[str] = []
    with session.begin_nested():
        on_commit(session, lambda: calls.append("nested"))
    assert calls == []
    session.commit()
    assert calls == ["nested"]
    session.commit()
    assert calls == ["nested"]


def test_a_failing_hook_does_not_undo_the_commit_or_skip_others(app_context, caplog):
    session = db.session()
    calls: list[str] = []

    def broken() -> None:
        raise ConnectionError("broker down")

    on_commit(session, broken)
    on_commit(session, lambda: calls.append("after"))
    session.commit()
    assert calls == ["after"]
    assert "after-commit callback failed" in caplog.text


def test_hooks_of_a_rolled_back_savepoint_are_dropped_but_outer_ones_run(app_context):
    session = db.session()
    calls: list[str] = []
    on_commit(session, lambda: calls.append("outer"))
    savepoint = session.begin_nested()
    on_commit(session, lambda: calls.append("inner"))
    savepoint.rollback()
    session.commit()
    assert calls == ["outer"]


def _calls(redis_client, *commands: str) -> dict[str, int]:
    stats = redis_client.info("commandstats")
    return {c: int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in commands}


def test_after_commit_redis_writes_leave_together_in_one_multi(app_context, redis_client):
    import uuid

    from app import realtime
    from app.entitlements.service import entitlement_cache

    customer_id = uuid.uuid4()
    session = db.session()
    on_commit(session, lambda: realtime.publish([("billingos:test", "a"), ("billingos:test", "b")]))
    on_commit(session, lambda: entitlement_cache().invalidate_after_commit(customer_id))
    before = _calls(redis_client, "multi", "exec", "publish", "incrby")
    session.commit()
    after = _calls(redis_client, "multi", "exec", "publish", "incrby")
    assert {c: after[c] - before[c] for c in after} == {
        "multi": 1,
        "exec": 1,
        "publish": 2,
        "incrby": 1,
    }
    # The invalidation itself happened: the customer's generation moved.
    assert redis_client.get(f"billingos:entitlements:gen:{customer_id}") == b"1"


def test_pre_built_task_message_is_what_send_task_would_store(app_context, redis_client):
    jobs.publish("test.pre_built", "evt_1")
    current_app.extensions["celery"].send_task("test.pre_built", args=("evt_1",))
    ours, celerys = (json.loads(m) for m in redis_client.lrange(QUEUE, 0, -1))
    assert base64.b64decode(ours["body"]) == base64.b64decode(celerys["body"])
    volatile = {"id", "root_id", "origin", "correlation_id", "reply_to", "delivery_tag"}
    for part in ("headers", "properties"):
        mine = {k: v for k, v in ours[part].items() if k not in volatile}
        theirs = {k: v for k, v in celerys[part].items() if k not in volatile}
        assert mine == theirs
    assert (
        ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    )
    assert {k: v for k, v in ours.items() if k not in ("headers", "properties", "body")} == {
        k: v for k, v in celerys.items() if k not in ("headers", "properties", "body")
    }
