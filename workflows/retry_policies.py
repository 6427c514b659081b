"""Retry policies the workflows share. A database step retries quickly and for ever (PostgreSQL
restarting delays it, never ends it); a chain step backs off further. Errors listed here mean a
retry cannot help: data the database refused (the worker's interceptor reports every such error of
every activity as `DataRefused`); a ledger refusal is a data or programming error; a transaction that
would revert, reverted, lost its nonce or was never stored will not be mined by trying again.

Every policy of every workflow either has an attempt limit or lists DATA_REFUSED
(tests/workflows/test_retry_policies.py checks it)."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.errors import DATA_REFUSED, LEDGER_REFUSALS, TRANSACTION_NEVER_MINED_OR_REVERTED

NEVER_RETRIED = [DATA_REFUSED]

DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=[*NEVER_RETRIED, *LEDGER_REFUSALS],
)
# No attempt limit: a node that is down delays the step.
CHAIN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[*NEVER_RETRIED, *TRANSACTION_NEVER_MINED_OR_REVERTED],
)
# The chain watcher's long poll: a node or database that is down delays watching, never ends it.
WATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=NEVER_RETRIED,
)
