"""PaymentIntentWorkflow: deposit address → wait for payment (expiry timer, cancel) → confirmations
by amount (a reorg sends it back to waiting) → settle gross/fee/net in the ledger → sweep → events.

Its id is the intent id. It is created with update-with-start (`register`), so the API gets the
stored intent back in one round trip. The chain watcher signals it; the domain rules in
`domain.payment_intents` decide; local activities write the read model and the events.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.chain_tx import SendTransactionInput, TransactionActivities, WaitTransactionInput
    from activities.chain_watcher import HeadSignal, OrphanSignal, PaymentSignal
    from activities.payment_intents import (
        AssignDepositInput,
        DepositAssignment,
        IntentRecord,
        PaymentIntentActivities,
        PostIntentLedgerInput,
        SweepCallInput,
    )
    from domain.payment_intents import (
        IntentRuleViolation,
        IntentState,
        IntentStatus,
        LedgerMove,
        Payment,
        PaymentIntentInput,
        PaymentIntentView,
        PaymentView,
        refundable_moves,
        settlement_moves,
        sweep_moves,
    )

from workflows.search_attributes import SETTLE_STATUS

DB_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=10))
CHAIN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["TransactionWouldRevert", "TransactionReverted", "NonceConflict", "TransactionUnknown"],
)
# After it is terminal, an intent keeps listening this long so a late payment is handled by the
# intent itself; after that the watcher records late payments on its own.
LATE_WINDOW = timedelta(minutes=10)


@workflow.defn
class PaymentIntentWorkflow:
    def __init__(self) -> None:
        self._input: PaymentIntentInput | None = None
        self._deposit: DepositAssignment | None = None
        self._state: IntentState | None = None
        self._registered = False
        self._changed = False
        self._event_sequence = 0
        self._pending: list[str] = []
        self._refundable_posted_base_units = 0
        self._swept_base_units = 0

    # ------------------------------------------------------------------ run
    @workflow.run
    async def run(self, input: PaymentIntentInput) -> PaymentIntentView:
        self._input = input
        self._state = IntentState(
            intent_id=input.intent_id,
            amount_due_base_units=input.amount_base_units,
            confirmations_required=input.confirmations_required,
            fee_bps=input.fee_bps,
        )
        self._deposit = await workflow.execute_local_activity_method(
            PaymentIntentActivities.assign_deposit_address,
            AssignDepositInput(intent_id=input.intent_id, chain_id=input.chain_id),
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=DB_RETRY,
        )
        await self._record(["payment_intent.created"], register=True)
        self._registered = True
        expires_at = datetime.fromisoformat(input.expires_at)

        while self._state.status not in (IntentStatus.SUCCEEDED, IntentStatus.EXPIRED, IntentStatus.CANCELED):
            remaining = (expires_at - workflow.now()).total_seconds()
            if remaining <= 0:
                await self._record(self._state.expire())
                break
            try:
                await workflow.wait_condition(lambda: self._changed, timeout=timedelta(seconds=remaining))
            except TimeoutError:
                continue  # the loop head expires it
            self._changed = False
            await self._record(self._pending_events())

        if self._state.status is IntentStatus.SUCCEEDED:
            await self._post_ledger(settlement_moves(self._input.intent_id, self._state.settlement))
        await self._post_refundable_delta()
        await self._sweep_what_is_held()

        # A late window: late payments still reach the intent, are recorded, evented, refundable.
        late_until = workflow.now() + LATE_WINDOW
        while workflow.now() < late_until:
            try:
                await workflow.wait_condition(lambda: self._changed, timeout=late_until - workflow.now())
            except TimeoutError:
                break
            self._changed = False
            await self._record(self._pending_events())
            await self._post_refundable_delta()
            await self._sweep_what_is_held()
        return self._view()

    # ------------------------------------------------------------------ signals / updates / queries
    @workflow.signal
    def payment_observed(self, signal: PaymentSignal) -> None:
        assert self._state is not None
        self._queue(
            self._state.observe_payment(
                Payment(
                    tx_hash=signal.tx_hash,
                    log_index=signal.log_index,
                    amount_base_units=signal.amount_base_units,
                    block_number=signal.block_number,
                    block_hash=signal.block_hash,
                    sender=signal.sender,
                )
            )
            + self._state.observe_head(signal.head_block_number)
        )

    @workflow.signal
    def block_orphaned(self, signal: OrphanSignal) -> None:
        assert self._state is not None
        self._queue(self._state.observe_orphaned_block(signal.block_hash))

    @workflow.signal
    def head_advanced(self, signal: HeadSignal) -> None:
        assert self._state is not None
        self._queue(self._state.observe_head(signal.head_block_number))

    @workflow.update
    async def register(self) -> PaymentIntentView:
        """The creation call (update-with-start): returns once the intent is stored."""
        await workflow.wait_condition(lambda: self._registered)
        return self._view()

    @workflow.update
    async def cancel(self) -> PaymentIntentView:
        await workflow.wait_condition(lambda: self._registered)
        assert self._state is not None
        try:
            events = self._state.cancel()
        except IntentRuleViolation as error:
            raise ApplicationError(str(error), type=error.code, non_retryable=True) from error
        await self._record(events)
        return self._view()

    @cancel.validator
    def _validate_cancel(self) -> None:
        if self._state is not None and self._state.payments:
            raise ValueError("an intent that has received a payment cannot be canceled")

    @workflow.query
    def view(self) -> PaymentIntentView:
        return self._view()

    # ------------------------------------------------------------------ internals
    def _queue(self, events: list[str]) -> None:
        self._pending.extend(events)
        self._changed = True

    def _pending_events(self) -> list[str]:
        events, self._pending = self._pending, []
        return events

    async def _record(self, events: list[str], *, register: bool = False) -> None:
        """Write the read model (status, amounts, payments) and the events, in one local activity."""
        assert self._input is not None and self._state is not None
        event_ids = []
        for event_type in events:
            self._event_sequence += 1
            event_ids.append((f"evt_{self._input.intent_id.removeprefix('pi_')}_{self._event_sequence:04d}", event_type))
        await workflow.execute_local_activity_method(
            PaymentIntentActivities.record_payment_intent,
            IntentRecord(input=self._input, deposit=self._deposit, view=self._view(), events=event_ids, register=register),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
        )
        workflow.upsert_search_attributes([SETTLE_STATUS.value_set(self._state.status.value)])

    async def _post_ledger(self, moves: list[LedgerMove]) -> None:
        assert self._input is not None
        if not moves:
            return
        await workflow.execute_activity_method(
            PaymentIntentActivities.post_intent_ledger,
            PostIntentLedgerInput(
                ledger_id=self._input.ledger_id, asset_key=self._input.asset_key, tenant_id=self._input.tenant_id, moves=moves
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
        )

    async def _post_refundable_delta(self) -> None:
        """Confirmed money the merchant did not earn (excess, expired, late) becomes refundable, once."""
        assert self._input is not None and self._state is not None
        total = self._state.refundable_base_units
        if total > self._refundable_posted_base_units:
            await self._post_ledger(refundable_moves(self._input.intent_id, posted_before=self._refundable_posted_base_units, total=total))
            self._refundable_posted_base_units = total

    def _held_base_units(self) -> int:
        """What the ledger says sits at the deposit address, confirmed: settled gross plus refundable."""
        assert self._state is not None
        settled = self._state.settlement.gross_base_units if self._state.settlement else 0
        return settled + self._refundable_posted_base_units

    async def _sweep_what_is_held(self) -> None:
        assert self._input is not None and self._deposit is not None
        amount = self._held_base_units() - self._swept_base_units
        if amount <= 0:
            return
        swept_total = self._swept_base_units + amount
        key = f"{self._input.intent_id}/sweep/{swept_total}"
        call = await workflow.execute_local_activity_method(
            PaymentIntentActivities.build_sweep_call,
            SweepCallInput(salt=self._deposit.salt, token=self._input.token_address),
            start_to_close_timeout=timedelta(seconds=5),
        )
        await workflow.execute_activity_method(
            TransactionActivities.send_transaction,
            SendTransactionInput(idempotency_key=key, to=self._deposit.factory, data=call),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=CHAIN_RETRY,
        )
        await workflow.execute_activity_method(
            TransactionActivities.wait_for_transaction,
            WaitTransactionInput(idempotency_key=key, confirmations_min=1),
            start_to_close_timeout=timedelta(seconds=90),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=CHAIN_RETRY,
        )
        await self._post_ledger(sweep_moves(self._input.intent_id, swept_before=self._swept_base_units, total=swept_total))
        self._swept_base_units = swept_total
        await self._record(["payment_intent.swept"])

    def _view(self) -> PaymentIntentView:
        assert self._input is not None and self._state is not None and self._deposit is not None
        state = self._state
        settlement = state.settlement
        return PaymentIntentView(
            id=self._input.intent_id,
            status=state.status.value,
            amount=str(state.amount_due_base_units),
            amount_received=str(state.amount_received_base_units),
            amount_remaining=str(state.amount_remaining_base_units),
            amount_refundable=str(state.refundable_base_units),
            fee=str(settlement.fee_base_units) if settlement else None,
            net=str(settlement.net_base_units) if settlement else None,
            confirmations_required=state.confirmations_required,
            deposit_address=self._deposit.address,
            payments=[
                PaymentView(
                    tx_hash=p.tx_hash,
                    log_index=p.log_index,
                    amount=str(p.amount_base_units),
                    block_number=p.block_number,
                    block_hash=p.block_hash,
                    confirmations=state.confirmations(p),
                    orphaned=p.orphaned,
                    late=p.late,
                )
                for p in state.payments.values()
            ],
            amount_swept=str(self._swept_base_units),
        )


def expires_at_iso(created: datetime, expires_in_s: int) -> str:
    return (created.astimezone(timezone.utc) + timedelta(seconds=expires_in_s)).isoformat()


async def start_payment_intent(client, input: PaymentIntentInput, *, task_queue: str) -> PaymentIntentView:
    """Create (or find) the intent's workflow and return its registered view in one round trip:
    update-with-start. The workflow id is the intent id, so the same id twice is the same intent."""
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    from workflows.search_attributes import search_attributes

    operation = WithStartWorkflowOperation(
        PaymentIntentWorkflow.run,
        input,
        id=input.intent_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes(kind="payment_intent", tenant=input.tenant_id, status="requires_payment"),
    )
    return await client.execute_update_with_start_workflow(PaymentIntentWorkflow.register, start_workflow_operation=operation)
