"""The EVM family's signed-transaction outbox (activities.chain_tx): EIP-1559 transactions signed
by the relayer, stored before they are broadcast, nonces allocated under a row lock.

A transaction left unmined (its fees fell below the market) is replaced: the same nonce, re-signed
with fees raised by at least 12.5% (nodes refuse a smaller bump), stored before it is broadcast.
Every signature of the nonce stays on record and any of them may be the one mined; the nonce makes
sure only one is."""

from __future__ import annotations

import asyncio

import asyncpg
import rlp
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from temporalio import activity
from temporalio.exceptions import ApplicationError
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from activities.chain_tx import MinedTransaction, SendTransactionInput, SentTransaction, TransactionActivities, WaitTransactionInput
from activities.chains.evm import EvmChain
from activities.chains.evm.rpc import NODE_ERRORS, chain_call, lower_hex
from activities.errors import ChainUnavailable
from db.chain import StoredTransaction, get_transaction, replace_signed_transaction, set_transaction_status, store_signed_transaction

GAS_HEADROOM_PERCENT = 25
RECEIPT_POLL_INTERVAL_S = 0.2
FEE_BUMP_PERCENT = 125  # of the replaced signature's fees; nodes want at least +10%


class EvmTransactionActivities(TransactionActivities):
    def __init__(self, pool: asyncpg.Pool, chain: EvmChain, *, relayer: LocalAccount) -> None:
        self._pool = pool
        self._w3 = chain.w3
        self._relayer = relayer
        self._chain_id = chain.chain_id

    @activity.defn(name="send_transaction")
    async def send_transaction(self, input: SendTransactionInput) -> SentTransaction:
        stored = await get_transaction(self._pool, idempotency_key=input.idempotency_key)
        if stored is None:
            stored = await self._sign_and_store(input)
        await self._broadcast(stored.raw_tx, stored.tx_hash)
        await set_transaction_status(self._pool, idempotency_key=input.idempotency_key, status="broadcast")
        activity.logger.info("tx %s for %s (nonce %d) broadcast", stored.tx_hash, input.idempotency_key, stored.nonce)
        return SentTransaction(idempotency_key=input.idempotency_key, tx_hash=stored.tx_hash, nonce=stored.nonce)

    @activity.defn(name="wait_for_transaction")
    async def wait_for_transaction(self, input: WaitTransactionInput) -> MinedTransaction:
        stored = await get_transaction(self._pool, idempotency_key=input.idempotency_key)
        if stored is None:
            raise ApplicationError(f"no transaction stored for {input.idempotency_key}", type="TransactionUnknown", non_retryable=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + input.wait_max_s
        rebroadcast_at = loop.time() + input.wait_max_s / 4
        replace_at = loop.time() + input.replace_after_s
        replacements = 0
        while True:
            activity.heartbeat()
            receipt = await self._receipt_of_any(stored)
            if receipt is not None:
                head = await chain_call(self._w3.eth.block_number)
                if head - receipt["blockNumber"] + 1 >= input.confirmations_min:
                    succeeded = receipt["status"] == 1
                    mined_hash = lower_hex(receipt["transactionHash"])
                    await set_transaction_status(
                        self._pool,
                        idempotency_key=input.idempotency_key,
                        status="confirmed" if succeeded else "failed",
                        block_number=receipt["blockNumber"],
                    )
                    if not succeeded:
                        raise ApplicationError(f"transaction {mined_hash} reverted", type="TransactionReverted", non_retryable=True)
                    return MinedTransaction(mined_hash, receipt["blockNumber"], True, receipt["gasUsed"])
            elif loop.time() > replace_at and replacements < input.replacements_max:
                replaced = await self._replace_with_higher_fees(stored, input)
                if replaced is not None:
                    stored = replaced
                    replacements += 1
                else:
                    stored = await get_transaction(self._pool, idempotency_key=input.idempotency_key) or stored
                replace_at = loop.time() + input.replace_after_s
            elif loop.time() > rebroadcast_at:
                # Not mined for a while (a restarted node dropped its pool?): the same bytes again, once per call.
                rebroadcast_at = deadline
                await self._broadcast(stored.raw_tx, stored.tx_hash)
            if loop.time() > deadline:
                raise ApplicationError(f"transaction {stored.tx_hash} not mined yet", type="TransactionPending")
            await asyncio.sleep(RECEIPT_POLL_INTERVAL_S)

    async def _receipt_of_any(self, stored: StoredTransaction):
        for tx_hash in stored.tx_hashes:
            try:
                return await self._w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                continue
            except NODE_ERRORS as error:
                raise ChainUnavailable(str(error)) from error
        return None

    async def _replace_with_higher_fees(self, stored: StoredTransaction, input: WaitTransactionInput) -> StoredTransaction | None:
        """Re-sign the stored transaction's nonce, call and gas with fees raised by FEE_BUMP_PERCENT
        (and at least what the chain asks now), store it, then broadcast it. None if capped, or if
        another worker replaced it first."""
        fields = decode_dynamic_fee_transaction(stored.raw_tx)
        latest = await chain_call(self._w3.eth.get_block("latest"))
        market_priority_fee = await chain_call(self._w3.eth.max_priority_fee)
        priority_fee = max(_bumped(fields["max_priority_fee_per_gas"]), market_priority_fee)
        max_fee = max(_bumped(fields["max_fee_per_gas"]), 2 * latest.get("baseFeePerGas", 0) + priority_fee)
        if max_fee > input.max_fee_per_gas_cap_wei:
            activity.logger.warning("tx %s for %s stays unmined: a bump to %d wei/gas is over the cap", stored.tx_hash,
                                    input.idempotency_key, max_fee)
            return None
        signed = self._relayer.sign_transaction(
            {
                "chainId": self._chain_id,
                "nonce": stored.nonce,
                "to": fields["to"],
                "data": fields["data"],
                "value": fields["value"],
                "gas": fields["gas"],
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": min(priority_fee, max_fee),
                "type": 2,
            }
        )
        tx_hash = "0x" + signed.hash.hex().removeprefix("0x")
        raw_tx = "0x" + signed.raw_transaction.hex().removeprefix("0x")
        replaced = await replace_signed_transaction(
            self._pool, idempotency_key=input.idempotency_key, replaced_tx_hash=stored.tx_hash, tx_hash=tx_hash, raw_tx=raw_tx
        )
        if replaced is None:
            return None
        activity.logger.warning("tx %s for %s (nonce %d) unmined: replaced by %s at %d wei/gas", stored.tx_hash,
                                input.idempotency_key, stored.nonce, tx_hash, max_fee)
        await self._broadcast(raw_tx, tx_hash)
        return replaced

    async def _sign_and_store(self, input: SendTransactionInput):
        to = to_checksum_address(input.to)
        try:
            gas_estimate = await self._w3.eth.estimate_gas(
                {"from": self._relayer.address, "to": to, "data": input.data, "value": input.value_wei}
            )
            latest = await self._w3.eth.get_block("latest")
            priority_fee = await self._w3.eth.max_priority_fee
            pending_nonce = await self._w3.eth.get_transaction_count(self._relayer.address, "pending")
        except ContractLogicError as error:
            raise ApplicationError(f"{input.idempotency_key} would revert: {error}", type="TransactionWouldRevert", non_retryable=True) from error
        except NODE_ERRORS as error:
            raise ChainUnavailable(str(error)) from error
        base_fee = latest.get("baseFeePerGas", 0)

        def sign(nonce: int) -> tuple[str, str]:
            signed = self._relayer.sign_transaction(
                {
                    "chainId": self._chain_id,
                    "nonce": nonce,
                    "to": to,
                    "data": input.data,
                    "value": input.value_wei,
                    "gas": gas_estimate * (100 + GAS_HEADROOM_PERCENT) // 100,
                    "maxFeePerGas": 2 * base_fee + priority_fee,
                    "maxPriorityFeePerGas": priority_fee,
                    "type": 2,
                }
            )
            return "0x" + signed.hash.hex().removeprefix("0x"), "0x" + signed.raw_transaction.hex().removeprefix("0x")

        return await store_signed_transaction(
            self._pool,
            idempotency_key=input.idempotency_key,
            chain_id=self._chain_id,
            sender=self._relayer.address,
            node_pending_nonce=pending_nonce,
            sign=sign,
        )

    async def _broadcast(self, raw_tx: str, tx_hash: str) -> None:
        try:
            await self._w3.eth.send_raw_transaction(raw_tx)
        except Web3RPCError as error:
            message = str(error).lower()
            # The same bytes are already pending or mined: that is success for an outbox.
            if "already known" in message or "already imported" in message:
                return
            if "nonce too low" in message:
                try:
                    await self._w3.eth.get_transaction(tx_hash)
                    return
                except TransactionNotFound:
                    raise ApplicationError(
                        f"nonce of {tx_hash} was used by another transaction", type="NonceConflict", non_retryable=True
                    ) from error
            raise ChainUnavailable(str(error)) from error
        except NODE_ERRORS as error:
            raise ChainUnavailable(str(error)) from error


def decode_dynamic_fee_transaction(raw_tx: str) -> dict:
    """The fields of a signed EIP-1559 transaction (0x02 || rlp([chainId, nonce, maxPriorityFee,
    maxFee, gas, to, value, data, accessList, v, r, s]))."""
    raw = bytes.fromhex(raw_tx.removeprefix("0x"))
    assert raw[0] == 2, "the outbox signs type-2 transactions only"
    items = rlp.decode(raw[1:])
    as_int = lambda item: int.from_bytes(item, "big")  # noqa: E731
    return {
        "chain_id": as_int(items[0]),
        "nonce": as_int(items[1]),
        "max_priority_fee_per_gas": as_int(items[2]),
        "max_fee_per_gas": as_int(items[3]),
        "gas": as_int(items[4]),
        "to": to_checksum_address(items[5]),
        "value": as_int(items[6]),
        "data": "0x" + items[7].hex(),
    }


def _bumped(fee_wei: int) -> int:
    return -(-fee_wei * FEE_BUMP_PERCENT // 100)

