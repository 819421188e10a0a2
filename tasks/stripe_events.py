"""Celery tasks: stripe_events."""
