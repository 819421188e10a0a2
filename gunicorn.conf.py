"""gunicorn settings for the `web` process (https://docs.gunicorn.org/en/stable/settings.html)."""

import os

from app.logging_setup import GUNICORN_LOGCONFIG

# All interfaces by default: a Heroku-style platform routes to $PORT on the dyno's interface.
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"  # noqa: S104
# gevent: thousands of idle websocket and SSE connections per process cost greenlets, not threads.
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "12000"))
# gevent otherwise records every greenlet's spawning stack and spawn tree: a dozen objects per
# greenlet (two per websocket), kept for the life of the connection, for debugging only. Read
# when gevent is first imported, which the worker class does after this file runs.
os.environ.setdefault("GEVENT_TRACK_GREENLET_TREE", "false")
# Long-lived streams must not be killed as "silent" workers; gevent workers heartbeat anyway.
timeout = 60
graceful_timeout = 20
keepalive = 75
# The access log shows the path without its query string: `?token=` must never reach a log.
accesslog = "-" if os.environ.get("ACCESS_LOG", "1") == "1" else None
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms %({x-request-id}o)s'
# Bounded request line and headers: unlimited ones let a client make gunicorn's parser do
# quadratic work on one request. 8190 is gunicorn's maximum; the app refuses URLs over 8000
# bytes itself (app/errors.py), so up to there a long URL is answered with problem+json, past
# it gunicorn answers with its own 414 page without reaching the app.
limit_request_line = 8190
limit_request_fields = 64
limit_request_field_size = 8190
# JSON lines with the request id, like the app's own (app/logging_setup.py).
logconfig_dict = GUNICORN_LOGCONFIG
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    # gunicorn's own error lines name the request URI, query string included ("Error handling
    # request /v1/checkout/…/ws?token=…"): mask credentials there too.
    from app.logging_setup import RedactingFilter

    for logger in (worker.log.error_log, worker.log.access_log):
        logger.addFilter(RedactingFilter())
    _tune_gc()


def _tune_gc():
    # A worker holds ~10,000 websockets of ~150 objects each, all long-lived. CPython's full
    # collection walks every tracked object (~0.4 µs each: ~1 s at that size), and the young
    # collections that precede one are triggered by allocation, i.e. by a burst of work such
    # as a broadcast to every client, which then waits for it. The app's own objects (loaded
    # before this hook) never become garbage: freeze them out of every collection. A larger
    # first threshold makes young collections (and so full ones) rarer; cyclic garbage still
    # gets collected, a little later (~50,000 objects, a few MB, at most).
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


# Metrics of every worker in one scrape (app/metrics.py): each worker writes its samples to
# files here. A fresh directory per start: samples of a previous run must not be added in.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="billingos-prometheus-web-")


def on_starting(server):
    # Check the secrets in the master, before any worker forks: a worker that fails to boot on
    # them would be replaced forever, and the process would look up while answering nothing.
    from app.config import Settings

    Settings.from_env().require_safe_secrets()
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def child_exit(server, worker):
    # A dead worker's open-stream gauge must not count any more.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
