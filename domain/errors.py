"""The catalogue of error types: the `type` of every `ApplicationError` an activity or workflow
raises, named once, so that the activity raising one and the retry policy or workflow branch
naming it cannot drift apart (a misspelt non-retryable type is silently retried for ever).
tests/domain/test_errors.py checks that every type raised or named under activities/ and
workflows/ is one of these.

Types are plain strings: Temporal carries them as such in failures and retry policies.
"""

from __future__ import annotations

# ------------------------------------------------------------------ never worth retrying
# A database refused what an activity wrote (a value it cannot store, a broken constraint): the
# same write fails the same way every time. The worker's interceptor raises it for every activity.
DATA_REFUSED = "DataRefused"
# The ledger refused to create an account or post a transfer: a data or programming error.
LEDGER_ACCOUNT_REFUSED = "LedgerAccountRefused"
LEDGER_TRANSFER_REFUSED = "LedgerTransferRefused"
# A chain transaction that will not be mined by trying again.
TRANSACTION_WOULD_REVERT = "TransactionWouldRevert"
TRANSACTION_REVERTED = "TransactionReverted"
NONCE_CONFLICT = "NonceConflict"  # its nonce was used by another transaction
TRANSACTION_UNKNOWN = "TransactionUnknown"  # no signed transaction stored under its key
# Refunds' business outcomes, which the workflow turns into a failed refund.
REFUND_INSUFFICIENT_BALANCE = "RefundInsufficientBalance"
REFUNDS_UNAVAILABLE = "RefundsUnavailable"  # no treasury configured
REFUND_ADDRESS_REFUSED = "RefundAddressRefused"
WEBHOOK_DELIVERY_NOT_FOUND = "WebhookDeliveryNotFound"
# Raised by PaymentIntentWorkflow to its creation call: the intent could not be stored (a data
# error no retry mends).
INTENT_REGISTRATION_FAILED = "IntentRegistrationFailed"

# ------------------------------------------------------------------ retried until they pass
TRANSACTION_PENDING = "TransactionPending"  # not mined yet
# The tenant's treasury account lacks the money (the intent's sweep is not posted yet): retried
# until the refund's wait runs out.
REFUND_TREASURY_SHORT = "RefundTreasuryShort"

ERROR_TYPES = frozenset(
    {
        DATA_REFUSED,
        LEDGER_ACCOUNT_REFUSED,
        LEDGER_TRANSFER_REFUSED,
        TRANSACTION_WOULD_REVERT,
        TRANSACTION_REVERTED,
        NONCE_CONFLICT,
        TRANSACTION_UNKNOWN,
        REFUND_INSUFFICIENT_BALANCE,
        REFUNDS_UNAVAILABLE,
        REFUND_ADDRESS_REFUSED,
        WEBHOOK_DELIVERY_NOT_FOUND,
        INTENT_REGISTRATION_FAILED,
        TRANSACTION_PENDING,
        REFUND_TREASURY_SHORT,
    }
)

# Groups the retry policies list as non-retryable.
LEDGER_REFUSALS = (LEDGER_ACCOUNT_REFUSED, LEDGER_TRANSFER_REFUSED)
TRANSACTION_NEVER_MINED_OR_REVERTED = (TRANSACTION_WOULD_REVERT, TRANSACTION_REVERTED, NONCE_CONFLICT, TRANSACTION_UNKNOWN)
