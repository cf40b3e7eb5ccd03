"""The outages the workers ride out: PostgreSQL or RabbitMQ unreachable or restarting.

A scheduler loop or a sender that meets one of these rolls back, logs, backs off and
tries again; unacked deliveries come back from the broker, so nothing is lost. Anything
else is a bug, which retrying would only repeat: the scheduler's loops log it with its
traceback and back off, and the events consumer and the senders park the event or
command in herald.dead.
"""

from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

FAULTS: tuple[type[BaseException], ...] = (
    # Connection lost or refused, server shutting down, deadlock, serialization failure.
    # Not IntegrityError or ProgrammingError: retrying a bug would spin on it.
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    AMQPError,
    ChannelInvalidStateError,  # publishing or acking on a channel that is reconnecting
    OSError,  # includes ConnectionError and TimeoutError (a confirm that never came)
)

_DESCRIPTION_MAX_LENGTH = 300


def describe(error: BaseException) -> str:
    """A one-line description for logs (SQLAlchemy errors carry the statement; keep it short)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:_DESCRIPTION_MAX_LENGTH]
