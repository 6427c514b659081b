"""The project's own exceptions for third-party failures, translated at the boundary; data errors
become `DataRefused` (domain.errors), which no retry mends."""

from __future__ import annotations

import asyncpg
from temporalio.exceptions import ApplicationError

from domain.errors import DATA_REFUSED

_DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # SQLSTATE class 22: a NUL byte in text, a value out of range, bad encoding
    asyncpg.IntegrityConstraintViolationError,  # class 23: a CHECK, NOT NULL, foreign key or unique key
    UnicodeEncodeError,  # a lone surrogate never reaches the database
)


class SettleError(Exception):
    """Base of Settle's errors."""


class ChainUnavailable(SettleError):
    """The chain node did not answer; retryable."""


def non_retryable_of(error: BaseException) -> ApplicationError | None:
    """The non-retryable error a data error becomes, or None for errors a retry may mend (a
    connection lost while PostgreSQL restarts, a node that does not answer)."""
    if isinstance(error, _DATA_ERRORS):
        # The message names the kind of refusal, never the data (it may hold a customer's text).
        return ApplicationError(f"the database refused the data: {type(error).__name__}", type=DATA_REFUSED, non_retryable=True)
    return None
