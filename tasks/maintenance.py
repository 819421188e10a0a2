"""Celery tasks: maintenance."""
