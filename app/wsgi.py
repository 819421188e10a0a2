"""WSGI entry point for gunicorn (`app.wsgi:app`).

gunicorn's gevent worker has already monkey-patched the standard library when this module is
imported; psycopg2 needs its own patch so a Postgres query yields to other greenlets instead of
blocking every websocket of the process (https://www.gevent.org/api/gevent.monkey.html,
https://github.com/psycopg/psycogreen).
"""

from __future__ import annotations

import sys

if "gevent" in sys.modules:
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()

from app import create_app

app = create_app()
