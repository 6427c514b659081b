"""SweeperWorkflow: one per chain, long-running. It moves settled money from deposit addresses to
the treasury in batches: wait until some address is due, claim a batch (up to 50 addresses), send
one `sweepBatch` transaction through the outbox under the batch id, wait for it, then post the
sweep moves and events. Intents only say what their address holds (activities.payment_intents);
sweeping costs them no workflow task. Continues as new before its history grows large."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.chain_tx import SendTransactionInput, TransactionActivities, WaitTransactionInput
    from activities.sweeps import ClaimSweepBatchInput, SweepActivities, SweepBatch, SweepBatchInput, WaitSweepsDueInput

from workflows.retry_policies import CHAIN_RETRY, DB_RETRY

BATCHES_PER_RUN_MAX = 100


@dataclass
class SweeperInput:
    chain_id: int
    deposit_factory: str
    batch_size_max: int = 50
    # Once something is due, wait this long for more before claiming: fewer, fuller batches.
    gather_s: float = 0.5
    wait_max_s: float = 50.0


@dataclass
class SweeperState:
    batches_sent: int = 0
    batches_failed: int = 0
    addresses_swept: int = 0
    last_batch_id: str | None = None
    failures: list[str] = field(default_factory=list)


def sweeper_workflow_id(chain_id: int) -> str:
    return f"sweeper-{chain_id}"


@workflow.defn
class SweeperWorkflow:
    def __init__(self) -> None:
        self._state = SweeperState()

    @workflow.run
    async def run(self, input: SweeperInput) -> None:
        for _ in range(BATCHES_PER_RUN_MAX):
            due = await workflow.execute_activity_method(
                SweepActivities.wait_for_sweeps_due,
                WaitSweepsDueInput(chain_id=input.chain_id, wait_max_s=input.wait_max_s),
                start_to_close_timeout=timedelta(seconds=input.wait_max_s + 30),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=DB_RETRY,
            )
            if due and due < input.batch_size_max and input.gather_s > 0:
                await workflow.sleep(timedelta(seconds=input.gather_s))
            if due:
                await self._sweep_one_batch(input)
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(input)

    async def _sweep_one_batch(self, input: SweeperInput) -> None:
        # Random but replay-stable: a new run (reset, restart) never reuses an old batch's outbox key.
        batch_id = f"sweep_{input.chain_id}_{workflow.uuid4().hex[:24]}"
        batch: SweepBatch = await workflow.execute_activity_method(
            SweepActivities.claim_sweep_batch,
            ClaimSweepBatchInput(chain_id=input.chain_id, batch_id=batch_id, size_max=input.batch_size_max),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
        )
        if batch.call_data is None:
            return
        self._state.last_batch_id = batch_id
        try:
            await workflow.execute_activity_method(
                TransactionActivities.send_transaction,
                SendTransactionInput(idempotency_key=batch_id, to=input.deposit_factory, data=batch.call_data),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=CHAIN_RETRY,
            )
            await workflow.execute_activity_method(
                TransactionActivities.wait_for_transaction,
                WaitTransactionInput(idempotency_key=batch_id, confirmations_min=1),
                start_to_close_timeout=timedelta(seconds=90),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=CHAIN_RETRY,
            )
        except ActivityError as error:
            # A batch that would revert or reverted: its addresses are due again, in a later batch.
            self._state.batches_failed += 1
            self._state.failures = [*self._state.failures[-9:], f"{batch_id}: {error.cause or error}"]
            workflow.logger.warning("sweep batch %s failed: %s", batch_id, error.cause or error)
            await workflow.execute_activity_method(
                SweepActivities.release_sweep_batch,
                SweepBatchInput(batch_id=batch_id),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=DB_RETRY,
            )
            await workflow.sleep(timedelta(seconds=5))
            return
        swept = await workflow.execute_activity_method(
            SweepActivities.complete_sweep_batch,
            SweepBatchInput(batch_id=batch_id),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=DB_RETRY,
        )
        self._state.batches_sent += 1
        self._state.addresses_swept += swept

    @workflow.query
    def state(self) -> SweeperState:
        return self._state
