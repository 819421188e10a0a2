"""The Celery application, built by `create_app()` so tasks share the app's configuration.

The product's layering puts this here, not in `tasks/`: `app` never imports `tasks`. Task
modules (`tasks/*.py`) declare their tasks with `@shared_task(name=app.jobs.…)`, which binds
them to whichever Celery app is current; the worker imports them through
`celeryconfig.imports`. The web process only sends tasks by name (`app.jobs`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init
from flask import Flask

from app import jobs
from app.config import Settings
from app.db import db


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
    same_redis = settings.broker_url == settings.redis_url
    jobs.init_publisher(app, settings.broker_url, app.extensions["redis"] if same_redis else None)
    return celery


@worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    # Prefork children inherit the parent's pooled sockets; sharing one between processes
    # interleaves their protocol streams.
    db.dispose()
