"""Celery tasks: thin wrappers that take ids, add a retry policy and call a service.

The names they register under, and the helper that sends them after commit, are in
`app/jobs.py`; the Celery app they register on is built in `app/celery_app.py`.
"""
