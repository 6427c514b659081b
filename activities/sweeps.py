"""The sweeper's activities: wait until deposit addresses hold swept-worthy money, claim a batch,
build its `sweepBatch` call, and, once its transaction is mined, post each intent's sweep move and
update the read model and events. The transaction itself goes through the outbox
(activities.chain_tx) under the batch id, so a batch sends at most one transaction."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
from temporalio import activity

from activities.chains import ChainAdapter
from activities.ledger_postings import post_moves
from db import sweeps as sweeps_db
from db.events import NewEvent, insert_events
from db.ledger_store import LedgerStore
from db.payment_intents import find_payment_intent, stored_intent_object
from domain.events import EventType, intent_swept_event_id
from domain.payment_intents import sweep_moves

# DepositFactory.SWEEP_BATCH_SIZE_MAX is 100; a first sweep deploys a clone (~70k gas each).
SWEEP_BATCH_SIZE_MAX = 50


@dataclass(frozen=True)
class WaitSweepsDueInput:
    chain_id: int
    wait_max_s: float = 50.0
    poll_interval_s: float = 0.25


@dataclass(frozen=True)
class ClaimSweepBatchInput:
    chain_id: int
    batch_id: str
    size_max: int = SWEEP_BATCH_SIZE_MAX


@dataclass(frozen=True)
class SweepBatch:
    batch_id: str
    intent_ids: list[str]
    call_data: str | None  # 0x-hex `sweepBatch` calldata; None when nothing was due


@dataclass(frozen=True)
class SweepBatchInput:
    batch_id: str


class SweepActivities:
    def __init__(self, pool: asyncpg.Pool, ledger: LedgerStore, *, chain: ChainAdapter, factory_address: str) -> None:
        self._pool = pool
        self._ledger = ledger
        self._chain = chain
        self._factory_address = factory_address

    @activity.defn
    async def wait_for_sweeps_due(self, input: WaitSweepsDueInput) -> int:
        """How many addresses are due, as soon as any is; 0 after `wait_max_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + input.wait_max_s
        while True:
            activity.heartbeat()
            due = await sweeps_db.count_sweeps_due(self._pool, chain_id=input.chain_id)
            if due or loop.time() >= deadline:
                return due
            await asyncio.sleep(input.poll_interval_s)

    @activity.defn
    async def claim_sweep_batch(self, input: ClaimSweepBatchInput) -> SweepBatch:
        items = await sweeps_db.claim_sweep_batch(self._pool, chain_id=input.chain_id, batch_id=input.batch_id, size_max=input.size_max)
        if not items:
            return SweepBatch(batch_id=input.batch_id, intent_ids=[], call_data=None)
        call = self._chain.sweep_batch_call(
            factory_address=self._factory_address, salts=[item.salt for item in items], token_addresses=[item.token_address for item in items]
        )
        activity.logger.info("sweep batch %s claims %d deposit addresses", input.batch_id, len(items))
        return SweepBatch(batch_id=input.batch_id, intent_ids=[item.intent_id for item in items], call_data=call.data)

    @activity.defn
    async def complete_sweep_batch(self, input: SweepBatchInput) -> int:
        """The batch's transaction was mined: each intent's sweep move, then the rows, the read
        model and a `payment_intent.swept` event, in one transaction. Safe to run again."""
        items = await sweeps_db.sweep_batch_items(self._pool, batch_id=input.batch_id)
        for item in items:
            await post_moves(
                self._ledger,
                ledger_id=item.ledger_id,
                asset_key=item.asset_key,
                moves=sweep_moves(item.intent_id, swept_before=item.swept_before_base_units, total=item.target_base_units),
                linked=False,
            )
        async with self._pool.acquire() as connection, connection.transaction():
            items = await sweeps_db.sweep_batch_items(connection, batch_id=input.batch_id, lock=True)
            await sweeps_db.finish_sweep_batch(connection, batch_id=input.batch_id)
            for item in items:
                await connection.execute(
                    "UPDATE payment_intents SET amount_swept = GREATEST(amount_swept, $2), updated_at = now() WHERE id = $1",
                    item.intent_id, item.target_base_units,
                )
                # The event carries the intent's read model as this transaction leaves it, through the
                # API's serializer: what GET answers now.
                stored = await find_payment_intent(connection, intent_id=item.intent_id)
                if stored is None:
                    activity.logger.warning("sweep batch %s: intent %s has no read model, no event", input.batch_id, item.intent_id)
                    continue
                await insert_events(
                    connection,
                    events=[
                        NewEvent(
                            id=intent_swept_event_id(intent_id=item.intent_id, swept_total_base_units=item.target_base_units),
                            tenant_id=item.tenant_id,
                            type=EventType.PAYMENT_INTENT_SWEPT,
                            object_id=item.intent_id,
                            data=stored_intent_object(stored),
                        )
                    ],
                )
        if items:
            activity.logger.info("sweep batch %s swept %d deposit addresses", input.batch_id, len(items))
        return len(items)

    @activity.defn
    async def release_sweep_batch(self, input: SweepBatchInput) -> int:
        released = await sweeps_db.release_sweep_batch(self._pool, batch_id=input.batch_id)
        activity.logger.warning("sweep batch %s failed: %d deposit addresses are due again", input.batch_id, released)
        return released
