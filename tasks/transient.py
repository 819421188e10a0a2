"""Which failures are worth another attempt, for every task that retries.

The same work may well succeed in a few seconds: Stripe answered a timeout, a 5xx or a 429
(`TransientStripeError`); Postgres lost the connection, is restarting, or ended a deadlock, a
lock or statement timeout (`OperationalError`); the run hit its soft time limit.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import DBAPIError, OperationalError

from app.stripe_gateway import TransientStripeError

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientStripeError,
    OperationalError,
    SoftTimeLimitExceeded,
)


def is_transient(error: BaseException, also: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether `error` (or one of the task's own `also` kinds) is worth another attempt."""
    if isinstance(error, TRANSIENT_ERRORS + also):
        return True
    # psycopg2 reports a dropped connection as InterfaceError, which SQLAlchemy flags.
    return isinstance(error, DBAPIError) and error.connection_invalidated
