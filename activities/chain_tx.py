"""Signed chain transactions through an outbox: built, signed, persisted (raw bytes, hash, nonce),
then broadcast. A retried activity finds the stored transaction by its step key and re-broadcasts
the same bytes, so a step sends at most one transaction whatever happens to the worker.

This module is the family-neutral face the workflows use (inputs, results, activity names); each
chain family implements it beside its adapter (activities/chains/evm/transactions.py)."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

@dataclass(frozen=True)
class SendTransactionInput:
    idempotency_key: str  # e.g. "pi_123/sweep": one transaction per step, ever
    to: str
    data: str  # 0x-hex calldata
    value_wei: int = 0


@dataclass(frozen=True)
class SentTransaction:
    idempotency_key: str
    tx_hash: str
    nonce: int


@dataclass(frozen=True)
class WaitTransactionInput:
    idempotency_key: str
    confirmations_min: int = 1
    wait_max_s: float = 60.0
    # Unmined this long after the wait began (or the last replacement): re-sign with higher fees.
    replace_after_s: float = 20.0
    replacements_max: int = 3  # per activity attempt; a retry may bump again
    max_fee_per_gas_cap_wei: int = 500 * 10**9


@dataclass(frozen=True)
class MinedTransaction:
    tx_hash: str
    block_number: int
    succeeded: bool
    gas_used: int


class TransactionActivities:
    """The outbox's activities by name; a chain family's worker registers its implementation."""

    @activity.defn(name="send_transaction")
    async def send_transaction(self, input: SendTransactionInput) -> SentTransaction:
        """Sign (once per idempotency key), store, then broadcast; again: the same bytes."""
        raise NotImplementedError

    @activity.defn(name="wait_for_transaction")
    async def wait_for_transaction(self, input: WaitTransactionInput) -> MinedTransaction:
        """Until any signature of the stored transaction is mined with `confirmations_min`;
        replaces a stuck one with the same nonce and higher fees."""
        raise NotImplementedError
