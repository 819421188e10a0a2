"""The Celery application, built by `create_app()` so tasks share the app's configuration.

Task modules declare tasks with `@shared_task(name=...)`; the worker imports them through
`celeryconfig.imports`. The web process sends them after commit (`tasks.enqueue_after_commit`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init
from flask import Flask
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import db, on_commit


def init_celery(app: Flask, settings: Settings) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                try:
                    return self.run(*args, **kwargs)
                finally:
                    db.session.remove()

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object("celeryconfig")
    celery.conf.broker_url = settings.broker_url
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


@worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    # Prefork children inherit the parent's pooled sockets; sharing one between processes
    # interleaves their protocol streams.
    db.dispose()


def enqueue_after_commit(
    session: Session,
    task: Task | str,
    *args: Any,
    countdown: float | None = None,
    **kwargs: Any,
) -> None:
    """Send `task` once the session's transaction has committed; never if it rolls back.

    A task sent before commit could run before its row is visible and find nothing; a task sent
    for a transaction that then rolled back would act on a row that never existed.
    """

    def send() -> None:
        if isinstance(task, str):
            from celery import current_app

            current_app.send_task(task, args=args, kwargs=kwargs, countdown=countdown)
        else:
            task.apply_async(args=args, kwargs=kwargs, countdown=countdown)

    on_commit(session, send)
