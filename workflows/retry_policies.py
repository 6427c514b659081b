"""Retry policies the workflows share. A database step retries quickly and for ever (PostgreSQL
restarting delays it, never ends it); a chain step backs off further. Errors listed here mean a
retry cannot help: a ledger refusal is a data or programming error; a transaction that would revert,
reverted, lost its nonce or was never stored will not be mined by trying again."""

from datetime import timedelta

from temporalio.common import RetryPolicy

LEDGER_REFUSALS = ["LedgerAccountRefused", "LedgerTransferRefused"]
TRANSACTION_NEVER_MINED_OR_REVERTED = ["TransactionWouldRevert", "TransactionReverted", "NonceConflict", "TransactionUnknown"]

DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=LEDGER_REFUSALS,
)
# No attempt limit: a node that is down delays the step.
CHAIN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=TRANSACTION_NEVER_MINED_OR_REVERTED,
)
