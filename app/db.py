"""Engine, sessions, and callbacks that run only after a transaction commits.

`on_commit(session, fn)` is the one mechanism behind "enqueue after commit" and "publish after
commit": the callback runs once the outermost transaction has committed, and is dropped if it
rolls back, so no task or real-time message ever refers to a row that does not exist.

Every connection carries `lock_timeout` and `statement_timeout` (Settings
`db_lock_timeout_ms`/`db_statement_timeout_ms`): a lock held too long elsewhere, or a statement
stuck behind one, becomes an error (`is_contention`) instead of a hang. A task retries it with
backoff; a request answers 503 with `Retry-After` (app/errors.py). No code path holds a row lock
or a pooled connection across a Stripe call, so these limits only fire when something is wrong;
the lock order every path follows is in docs/architecture.md ("Locks and Stripe calls").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, SessionTransaction, scoped_session, sessionmaker

from app.redis_client import one_round_trip

log = logging.getLogger(__name__)

_HOOKS_KEY = "billingos.after_commit"

# SQLSTATEs of a transaction that lost a wait, not of a bug: lock_not_available (lock_timeout,
# NOWAIT), query_canceled (statement_timeout), deadlock_detected, serialization_failure.
CONTENTION_SQLSTATES = frozenset({"55P03", "57014", "40P01", "40001"})


def is_contention(error: BaseException) -> bool:
    """True for a database error that running the same work again later may not hit."""
    if not isinstance(error, DBAPIError):
        return False
    return getattr(error.orig, "pgcode", None) in CONTENTION_SQLSTATES


def connection_options(*, lock_timeout_ms: int, statement_timeout_ms: int) -> str:
    """libpq `options`: set once per connection, so every session of the pool carries them."""
    # timestamptz values come back in the session's time zone; the API speaks UTC.
    return (
        f"-c timezone=UTC -c lock_timeout={int(lock_timeout_ms)} "
        f"-c statement_timeout={int(statement_timeout_ms)}"
    )


class Database:
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self._options = ""
        # Whether statements may be PREPAREd on the server (not behind a transaction pooler).
        self.server_prepare = True
        self._autocommit: Engine | None = None
        self.session_factory = sessionmaker(expire_on_commit=False)
        # Greenlet-local under gevent (threading.local is patched), thread-local otherwise.
        self.session = scoped_session(self.session_factory)
        event.listen(self.session_factory, "after_commit", _run_after_commit_hooks)
        event.listen(self.session_factory, "after_soft_rollback", _drop_after_commit_hooks)

    def configure(
        self,
        url: str,
        *,
        pool_size: int = 10,
        lock_timeout_ms: int = 5000,
        statement_timeout_ms: int = 30000,
        server_prepare: bool = True,
    ) -> None:
        self.server_prepare = server_prepare
        options = connection_options(
            lock_timeout_ms=lock_timeout_ms, statement_timeout_ms=statement_timeout_ms
        )
        if (
            self.engine is not None
            and self.engine.url.render_as_string(hide_password=False) == url
            and self._options == options
        ):
            return
        if self.engine is not None:
            self.engine.dispose()
        if self._autocommit is not None:
            self._autocommit.dispose()
            self._autocommit = None
        self.engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
            # Error messages (and so log lines and tracebacks) never quote bound parameters:
            # they are emails, token digests and client secrets.
            hide_parameters=True,
            connect_args={"options": options},
        )
        self._options = options
        self.session_factory.configure(bind=self.engine)

    def dispose(self) -> None:
        """Drop pooled connections, e.g. in a forked child that must not share them."""
        if self.engine is not None:
            self.engine.dispose(close=False)
        if self._autocommit is not None:
            self._autocommit.dispose(close=False)

    def autocommit_engine(self) -> Engine:
        """For a request path whose whole transaction is one statement (webhook ingest).

        Autocommit: the statement is its own transaction, one round trip instead of three
        (BEGIN + statement, COMMIT, and the pool's pre-ping). Without the pre-ping a pooled
        connection Postgres dropped fails the one request that finds it (the pool then
        replaces every connection); such a caller must answer a retryable error (the webhook
        endpoint answers 503, which Stripe retries). Created on first use, so processes that
        never take this path hold no extra connections.
        """
        if self._autocommit is None:
            assert self.engine is not None, "db.configure() first"
            self._autocommit = create_engine(
                self.engine.url,
                # A fixed pool: each request holds a connection for one statement, and under
                # load overflow connections were opened and closed per request (a connect and
                # a disconnect cost more than the insert).
                pool_size=self.engine.pool.size(),  # type: ignore[attr-defined]
                max_overflow=0,
                pool_timeout=5,
                pool_recycle=1800,
                isolation_level="AUTOCOMMIT",
                hide_parameters=True,
                connect_args={"options": self._options},
            )
        return self._autocommit

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error (tasks, CLI)."""
        session = self.session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            self.session.remove()


def on_commit(session: Session, callback: Callable[[], Any]) -> None:
    """Run `callback` after the session's outermost transaction commits.

    It is dropped if the transaction it was registered in rolls back — including a savepoint
    (`begin_nested()`) that rolls back while the outer transaction goes on to commit.
    """
    if not session.in_transaction():
        session.begin()
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_HOOKS_KEY, []).append((transaction, callback))


def _run_after_commit_hooks(session: Session) -> None:
    # SQLAlchemy also fires after_commit when a savepoint is released; only the outermost
    # commit makes anything visible to other connections.
    if session.get_nested_transaction() is not None:
        return
    hooks = session.info.pop(_HOOKS_KEY, [])
    if not hooks:
        return
    # The hooks' Redis writes (messages, cache invalidations) leave in one round trip.
    with one_round_trip():
        for _transaction, hook in hooks:
            try:
                hook()
            except Exception:
                # The data is committed; a failed enqueue or publish is recovered by the
                # sweepers (re-enqueue of unprocessed events, reconciliation of stuck
                # checkouts), so it must not turn a committed success into an error for the
                # caller.
                log.exception("after-commit callback failed")


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def _drop_after_commit_hooks(session: Session, previous_transaction: SessionTransaction) -> None:
    hooks = session.info.get(_HOOKS_KEY)
    if not hooks:
        return
    kept = [(t, h) for t, h in hooks if not _within(t, previous_transaction)]
    if kept:
        session.info[_HOOKS_KEY] = kept
    else:
        session.info.pop(_HOOKS_KEY, None)


db = Database()
