"""An intent's expiry and late window are long timers: tested by skipping time on Temporal's test
server, never by waiting. The activities are the real ones, on the shared stack's PostgreSQL; the
chain id is one no watcher or sweeper serves, so nothing else touches these rows."""

from __future__ import annotations

import random
import time
import uuid
from datetime import datetime, timedelta, timezone

from temporalio.worker import Worker

from activities.chain_watcher import PaymentSignal
from domain.ledger import account_id
from activities.payment_intents import PaymentIntentActivities
from db.ledger_store import LedgerStore
from domain.payment_intents import PaymentIntentInput
from tests.temporal_env import time_skipping_environment
from workflows.payment_intent_workflow import PaymentIntentWorkflow, start_payment_intent

THREE_DAYS = timedelta(days=3)


def _input(chain_id: int, *, amount: int) -> PaymentIntentInput:
    tenant = f"tenant_{uuid.uuid4().hex[:10]}"
    return PaymentIntentInput(
        intent_id=f"pi_{uuid.uuid4().hex[:24]}", tenant_id=tenant, ledger_id=tenant, chain_id=chain_id, asset="usdc",
        asset_key=f"evm:{chain_id}:usdc", token_address="0x" + "11" * 20, decimals=6, amount_base_units=amount, fee_bps=100,
        confirmations_required=1, expires_at=(datetime.now(timezone.utc) + THREE_DAYS).isoformat(), client_secret_hash="test",
    )


async def test_an_unpaid_intent_expires_after_three_days_and_an_underpaid_one_keeps_its_money_refundable(stack, db_pool):
    chain_id = random.randint(900_000, 999_999)
    ledger = LedgerStore(db_pool)
    activities = PaymentIntentActivities(
        db_pool, ledger, chain_id=chain_id,
        deposit_factory=stack["contracts"]["DepositFactory"], deposit_implementation=stack["contracts"]["DepositForwarder"],
    )
    started = time.monotonic()
    try:
        async with time_skipping_environment() as env:
            task_queue = f"expiry-{uuid.uuid4().hex[:8]}"
            async with Worker(env.client, task_queue=task_queue, workflows=[PaymentIntentWorkflow],
                              activities=[activities.assign_deposit_address, activities.record_payment_intent]):
                unpaid, underpaid = _input(chain_id, amount=5_000_000), _input(chain_id, amount=5_000_000)
                await start_payment_intent(env.client, unpaid, task_queue=task_queue)
                view = await start_payment_intent(env.client, underpaid, task_queue=task_queue)
                await env.client.get_workflow_handle(underpaid.intent_id).signal(
                    PaymentIntentWorkflow.payment_observed,
                    PaymentSignal(chain_id=chain_id, tx_hash="0x" + "ab" * 32, log_index=0, token_address=underpaid.token_address,
                                  sender="0x" + "22" * 20, amount_base_units=1_000, block_number=10, block_hash="0x" + "cd" * 32,
                                  head_block_number=10),
                )
                # Three days to expiry, then the ten-minute late window: skipped (an update-with-start
                # keeps the test server from skipping on its own while a result is awaited).
                await env.sleep(THREE_DAYS + timedelta(minutes=11))
                unpaid_view = await env.client.get_workflow_handle_for(PaymentIntentWorkflow.run, unpaid.intent_id).result()
                underpaid_view = await env.client.get_workflow_handle_for(PaymentIntentWorkflow.run, underpaid.intent_id).result()
    finally:
        elapsed_s = time.monotonic() - started
    assert elapsed_s < 120  # three days and ten minutes, skipped

    assert (unpaid_view.status, unpaid_view.amount_refundable) == ("expired", "0")
    assert (underpaid_view.status, underpaid_view.amount_received, underpaid_view.amount_refundable) == ("expired", "1000", "1000")
    assert view.deposit_address == underpaid_view.deposit_address
    for input, refundable in ((unpaid, 0), (underpaid, 1_000)):
        row = await db_pool.fetchrow("SELECT status, amount_refundable FROM payment_intents WHERE id = $1", input.intent_id)
        assert (row["status"], int(row["amount_refundable"])) == ("expired", refundable)
        events = [r["type"] for r in await db_pool.fetch("SELECT type FROM events WHERE object_id = $1 ORDER BY id", input.intent_id)]
        assert events[0] == "payment_intent.created" and events[-1] == "payment_intent.expired"
    # The underpaid intent's confirmed money is the customer's, in the ledger, and due for a sweep.
    unallocated_id = account_id(ledger=underpaid.ledger_id, asset=underpaid.asset_key, code="unallocated")
    (unallocated,) = await ledger.lookup_accounts([unallocated_id])
    await ledger.close()
    assert unallocated.credits_posted - unallocated.debits_posted == 1_000
    held = await db_pool.fetchval("SELECT held_base_units FROM sweep_requests WHERE intent_id = $1", underpaid.intent_id)
    assert int(held) == 1_000
    assert await db_pool.fetchval("SELECT count(*) FROM sweep_requests WHERE intent_id = $1", unpaid.intent_id) == 0
