"""Celery tasks: checkout."""
