"""Celery tasks: catalog."""
