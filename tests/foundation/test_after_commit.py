"""Tasks are enqueued only after their transaction commits, and never after a rollback."""

from __future__ import annotations

import json

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
