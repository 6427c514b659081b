"""The chain watcher's activity: a long poll over one chain.

Each pass, through the chain's adapter (activities.chains): check the newest stored block hash against the node (a reorg rewinds to the common
ancestor and tells the owning intents which blocks were orphaned), read ERC-20 `Transfer` logs of
the watched tokens with ranged `eth_getLogs`, match their recipients against deposit addresses,
store the payments, signal the owning intent workflows, and only then advance the cursor. A crash
anywhere repeats a pass (signals are idempotent at the receiver); it never skips one.

What arrives from the chain is bounded here, where it arrives: an intent is told of at most
PAYMENTS_PER_INTENT_MAX payments, the last PAYMENTS_RESERVED_TO_COMPLETE of them only payments that
complete it (so dust sent first cannot crowd out the real payment). Transfers beyond that, and those to an intent whose workflow has
closed, are stored as unattributed; once they have the intent's confirmations the watcher posts
them to the tenant's `unallocated` account (refundable money), adds them to the intent's
refundable amount and asks the sweeper to move them, without waking the intent.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.chains import ChainAdapter
from activities.ledger_postings import post_moves
from db import chain as chain_db
from db.ledger_store import LedgerStore
from domain.money import asset_key
from domain.payment_intents import PAYMENTS_PER_INTENT_MAX, PAYMENTS_RESERVED_TO_COMPLETE, unattributed_moves

SIGNAL_PAYMENT_OBSERVED = "payment_observed"
SIGNAL_BLOCK_ORPHANED = "block_orphaned"
SIGNAL_HEAD_ADVANCED = "head_advanced"


@dataclass(frozen=True)
class WatchChainInput:
    chain_id: int
    token_addresses: list[str]
    run_for_s: float = 60.0
    poll_interval_s: float = 0.2
    blocks_per_pass_max: int = 500
    reorg_depth_max: int = 64
    start_block: int | None = None  # where a chain with no cursor starts; None: the current head
    unattributed_per_pass_max: int = 100


@dataclass
class WatchChainResult:
    next_block: int
    passes: int = 0
    payments_seen: int = 0
    reorgs: int = 0
    signals_sent: int = 0
    unattributed_posted: int = 0


@dataclass(frozen=True)
class PaymentSignal:
    """What an intent workflow receives for each matched transfer."""

    chain_id: int
    tx_hash: str
    log_index: int
    token_address: str
    sender: str
    amount_base_units: int
    block_number: int
    block_hash: str
    head_block_number: int


@dataclass(frozen=True)
class OrphanSignal:
    block_hash: str


@dataclass(frozen=True)
class HeadSignal:
    head_block_number: int


class ChainWatcherActivities:
    def __init__(self, pool: asyncpg.Pool, chain: ChainAdapter, temporal: Client, ledger: LedgerStore) -> None:
        self._pool = pool
        self._chain = chain
        self._temporal = temporal
        self._ledger = ledger

    @activity.defn
    async def watch_chain(self, input: WatchChainInput) -> WatchChainResult:
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + input.run_for_s
        cursor = await chain_db.get_cursor(self._pool, chain_id=input.chain_id)
        if cursor is None:
            cursor = input.start_block if input.start_block is not None else await self._chain.head_block_number()
            await chain_db.set_cursor(self._pool, chain_id=input.chain_id, next_block=cursor)
        result = WatchChainResult(next_block=cursor)
        # Where the last run stopped telling heads (a restart neither skips one nor re-tells them all).
        last_head_told = await chain_db.get_last_head_told(self._pool, chain_id=input.chain_id)
        if last_head_told is None:
            last_head_told = cursor - 1
        while loop.time() < stop_at:
            activity.heartbeat(asdict(result))
            result.passes += 1
            head = await self._chain.head_block_number()
            cursor = await self._rewind_on_reorg(input, cursor, result)
            if cursor <= head:
                to_block = min(head, cursor + input.blocks_per_pass_max - 1)
                if await self._scan(input, cursor, to_block, head, result):
                    cursor = to_block + 1
                    await chain_db.set_cursor(self._pool, chain_id=input.chain_id, next_block=cursor)
                    result.next_block = cursor
                continue
            if head != last_head_told:
                for intent_id in await chain_db.intents_confirming(
                    self._pool, chain_id=input.chain_id, head_block_number=head, last_head_told=last_head_told
                ):
                    await self._signal(intent_id, SIGNAL_HEAD_ADVANCED, HeadSignal(head), result)
                await self._post_unattributed(input, head, result)
                await chain_db.set_last_head_told(self._pool, chain_id=input.chain_id, head_block_number=head)
                last_head_told = head
            await asyncio.sleep(input.poll_interval_s)
        return result

    async def _scan(self, input: WatchChainInput, from_block: int, to_block: int, head: int, result: WatchChainResult) -> bool:
        """One range: logs, block hashes, payments, signals. False when the chain moved under us."""
        transfers = await self._chain.token_transfers(from_block=from_block, to_block=to_block, token_addresses=input.token_addresses)
        # Hashes of the newest blocks of the range, kept to see a reorg later.
        hashes_from = max(from_block, to_block - input.reorg_depth_max + 1)
        blocks = [await self._chain.block(number) for number in range(hashes_from, to_block + 1)]
        block_hash_by_number = {block.number: block.hash for block in blocks}
        for transfer in transfers:
            number = transfer.block_number
            if number in block_hash_by_number and transfer.block_hash != block_hash_by_number[number]:
                return False  # a reorg between the two reads: do the range again
        deposits = await chain_db.match_deposit_addresses(
            self._pool, chain_id=input.chain_id, addresses=[transfer.recipient for transfer in transfers]
        )
        payments = []
        for transfer in transfers:
            deposit = deposits.get(transfer.recipient)
            if deposit is None or deposit.token_address != transfer.token_address or transfer.amount_base_units == 0:
                continue
            payments.append(
                chain_db.ObservedPayment(
                    chain_id=input.chain_id,
                    tx_hash=transfer.tx_hash,
                    log_index=transfer.log_index,
                    intent_id=deposit.intent_id,
                    token_address=transfer.token_address,
                    sender=transfer.sender,
                    amount_base_units=transfer.amount_base_units,
                    block_number=transfer.block_number,
                    block_hash=transfer.block_hash,
                )
            )
        to_tell = await chain_db.record_payments(
            self._pool, payments=payments, payments_per_intent_max=PAYMENTS_PER_INTENT_MAX,
            payments_reserved_to_complete=PAYMENTS_RESERVED_TO_COMPLETE,
        )
        if len(to_tell) < len(payments):
            activity.logger.warning(
                "chain %d blocks %d-%d: %d payments beyond their intents' cap of %d stored as unattributed",
                input.chain_id, from_block, to_block, len(payments) - len(to_tell), PAYMENTS_PER_INTENT_MAX,
            )
        await chain_db.store_block_hashes(
            self._pool, chain_id=input.chain_id, blocks=[(block.number, block.hash, block.parent_hash) for block in blocks]
        )
        for payment in to_tell:
            signal = PaymentSignal(
                chain_id=payment.chain_id,
                tx_hash=payment.tx_hash,
                log_index=payment.log_index,
                token_address=payment.token_address,
                sender=payment.sender,
                amount_base_units=payment.amount_base_units,
                block_number=payment.block_number,
                block_hash=payment.block_hash,
                head_block_number=head,
            )
            if not await self._signal(payment.intent_id, SIGNAL_PAYMENT_OBSERVED, signal, result):
                # The intent's workflow has closed (its late window is over): recorded and evented here.
                if await chain_db.record_late_payment(self._pool, payment=payment):
                    activity.logger.warning(
                        "late payment %s:%d of %d base units to closed intent %s: recorded, left at its deposit address",
                        payment.tx_hash, payment.log_index, payment.amount_base_units, payment.intent_id,
                    )
        result.payments_seen += len(payments)
        return True

    async def _post_unattributed(self, input: WatchChainInput, head: int, result: WatchChainResult) -> None:
        """Confirmed unattributed payments: ledger move first (its id derived from the payment, so a
        repeated pass posts nothing twice), then the read model and the sweep request, once."""
        due = await chain_db.unattributed_payments_due(
            self._pool, chain_id=input.chain_id, head_block_number=head, limit=input.unattributed_per_pass_max
        )
        for payment in due:
            ledger_id = payment.tenant_id
            key = asset_key(chain_id=payment.chain_id, code=payment.asset)
            await post_moves(
                self._ledger, ledger_id=ledger_id, asset_key=key,
                moves=unattributed_moves(payment.intent_id, tx_hash=payment.tx_hash, log_index=payment.log_index,
                                         amount_base_units=payment.amount_base_units),
                linked=False,
            )
            if await chain_db.mark_unattributed_posted(self._pool, payment=payment, ledger_id=ledger_id, asset_key=key):
                result.unattributed_posted += 1

    async def _rewind_on_reorg(self, input: WatchChainInput, cursor: int, result: WatchChainResult) -> int:
        newest = cursor - 1
        if newest < 0:
            return cursor
        oldest = max(0, newest - input.reorg_depth_max + 1)
        stored = await chain_db.stored_block_hashes(self._pool, chain_id=input.chain_id, from_block=oldest, to_block=newest)
        if newest not in stored:
            return cursor
        if (await self._chain.block(newest)).hash == stored[newest]:
            return cursor
        ancestor = oldest - 1
        for number in range(newest - 1, oldest - 1, -1):
            if number in stored and (await self._chain.block(number)).hash == stored[number]:
                ancestor = number
                break
        orphaned_hashes = await chain_db.forget_blocks_after(self._pool, chain_id=input.chain_id, block_number=ancestor)
        for intent_id, block_hash in await chain_db.orphan_payments(self._pool, chain_id=input.chain_id, block_hashes=orphaned_hashes):
            await self._signal(intent_id, SIGNAL_BLOCK_ORPHANED, OrphanSignal(block_hash), result)
        # The cursor moves back only after the intents were told, so a crash here tells them again.
        await chain_db.set_cursor(self._pool, chain_id=input.chain_id, next_block=ancestor + 1)
        result.reorgs += 1
        result.next_block = ancestor + 1
        activity.logger.warning("reorg on chain %d: rewound from block %d to %d", input.chain_id, newest, ancestor)
        return ancestor + 1

    async def _signal(self, workflow_id: str, signal: str, payload: object, result: WatchChainResult) -> bool:
        """Signal an intent; False if its workflow is closed or unknown."""
        try:
            await self._temporal.get_workflow_handle(workflow_id).signal(signal, payload)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        result.signals_sent += 1
        return True

