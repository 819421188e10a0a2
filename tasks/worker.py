"""Entry point for `celery -A tasks.worker worker|beat` and Flower."""

from app import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
