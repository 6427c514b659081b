"""Sweep requests on the real PostgreSQL: held amounts only rise, a batch id claims once (a retried
claim gets the same items back), a failed batch's rows are due again, and money that arrives while
a batch is in flight stays due for the next one. Each test uses a chain id nobody else serves."""

from __future__ import annotations

import random
import uuid

from db import sweeps as sweeps_db


def _request(chain_id: int, intent_id: str, held: int) -> sweeps_db.SweepRequest:
    return sweeps_db.SweepRequest(
        intent_id=intent_id, tenant_id="tenant_sweeps", ledger_id="tenant_sweeps", asset_key=f"evm:{chain_id}:usdc",
        chain_id=chain_id, token_address="0x" + "11" * 20, salt="0x" + uuid.uuid4().hex * 2, held_base_units=held,
    )


async def _held_and_swept(db_pool, intent_id: str) -> tuple[int, int]:
    row = await db_pool.fetchrow("SELECT held_base_units, swept_base_units FROM sweep_requests WHERE intent_id = $1", intent_id)
    return int(row["held_base_units"]), int(row["swept_base_units"])


async def test_claims_are_stable_failed_batches_come_back_and_late_money_stays_due(db_pool):
    chain_id = random.randint(800_000, 899_999)
    intents = [f"pi_sweep_{uuid.uuid4().hex[:12]}_{i}" for i in range(3)]
    for intent_id in intents:
        await sweeps_db.request_sweep(db_pool, request=_request(chain_id, intent_id, 1_000))
    # Held only rises: a retried older call (a lower amount) changes nothing.
    await sweeps_db.request_sweep(db_pool, request=_request(chain_id, intents[0], 1_500))
    await sweeps_db.request_sweep(db_pool, request=_request(chain_id, intents[0], 1_000))
    assert await _held_and_swept(db_pool, intents[0]) == (1_500, 0)
    assert await sweeps_db.count_sweeps_due(db_pool, chain_id=chain_id) == 3

    first = await sweeps_db.claim_sweep_batch(db_pool, chain_id=chain_id, batch_id=f"b1_{chain_id}", size_max=2)
    again = await sweeps_db.claim_sweep_batch(db_pool, chain_id=chain_id, batch_id=f"b1_{chain_id}", size_max=2)
    assert len(first) == 2 and again == first  # a retried claim never widens or changes its batch
    second = await sweeps_db.claim_sweep_batch(db_pool, chain_id=chain_id, batch_id=f"b2_{chain_id}", size_max=2)
    assert {i.intent_id for i in first} | {i.intent_id for i in second} == set(intents) and len(second) == 1
    assert await sweeps_db.count_sweeps_due(db_pool, chain_id=chain_id) == 0

    # The first batch's transaction failed: its rows are due again, for a new batch, same targets.
    assert await sweeps_db.release_sweep_batch(db_pool, batch_id=f"b1_{chain_id}") == 2
    retried = await sweeps_db.claim_sweep_batch(db_pool, chain_id=chain_id, batch_id=f"b3_{chain_id}", size_max=10)
    assert [(i.intent_id, i.target_base_units) for i in retried] == [(i.intent_id, i.target_base_units) for i in first]

    # Money confirmed while batch 3 is in flight: the batch keeps its target; the rest stays due.
    late = retried[0].intent_id
    held_before, _ = await _held_and_swept(db_pool, late)
    await sweeps_db.request_sweep(db_pool, request=_request(chain_id, late, held_before + 700))
    async with db_pool.acquire() as connection, connection.transaction():
        await sweeps_db.finish_sweep_batch(connection, batch_id=f"b3_{chain_id}")
    assert await _held_and_swept(db_pool, late) == (held_before + 700, held_before)
    assert await sweeps_db.sweep_batch_items(db_pool, batch_id=f"b3_{chain_id}") == []
    due = await sweeps_db.claim_sweep_batch(db_pool, chain_id=chain_id, batch_id=f"b4_{chain_id}", size_max=10)
    assert [(i.intent_id, i.swept_before_base_units, i.target_base_units) for i in due] == [(late, held_before, held_before + 700)]
