"""PaymentIntentWorkflow: deposit address → wait for payment (expiry timer, cancel) → confirmations
by amount (a reorg sends it back to waiting) → settle gross/fee/net in the ledger → events.

Its id is the intent id. It is created with update-with-start (`register`), so the API gets the
stored intent back in one round trip. The chain watcher signals it; the domain rules in
`domain.payment_intents` decide; one local activity per change posts the ledger moves that change
calls for, then writes the read model, the events and what the deposit address now holds. The
chain's SweeperWorkflow moves held money to the treasury in batches, so an intent costs few
workflow tasks: one to start, one per observed change.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.chain_watcher import HeadSignal, OrphanSignal, PaymentSignal
    from activities.payment_intents import (
        AssignDepositInput,
        DepositAssignment,
        IntentRecord,
        PaymentIntentActivities,
    )
    from domain.errors import INTENT_REGISTRATION_FAILED
    from domain.events import EventType, intent_event_id
    from domain.payment_intents import (
        AMOUNT_BASE_UNITS_MAX,
        PAYMENTS_PER_INTENT_MAX,
        TERMINAL_STATUSES,
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
    )

from workflows.retry_policies import DB_RETRY
from workflows.search_attributes import SETTLE_CHAIN, SETTLE_DEPOSIT_ADDRESS, SETTLE_STATUS, chain_attribute

# After it is terminal, an intent keeps listening this long so a late payment is handled by the
# intent itself; after that the watcher records late payments on its own.
LATE_WINDOW = timedelta(minutes=10)


@workflow.defn
class PaymentIntentWorkflow:
    @workflow.init
    def __init__(self, input: PaymentIntentInput) -> None:
        # The state exists before any handler runs: a signal in the first activation finds it.
        self._input = input
        self._state = IntentState(
            intent_id=input.intent_id,
            amount_due_base_units=input.amount_base_units,
            confirmations_required=input.confirmations_required,
            fee_bps=input.fee_bps,
        )
        self._deposit: DepositAssignment | None = None
        self._registered = False
        self._registration_failure: ApplicationError | None = None
        self._changed = False
        self._event_sequence = 0
        self._pending: list[EventType] = []
        self._settlement_posted = False
        self._refundable_posted_base_units = 0
        self._signals_ignored = 0
        self._status_attribute = IntentStatus.REQUIRES_PAYMENT.value  # set by start_payment_intent

    # ------------------------------------------------------------------ run
    @workflow.run
    async def run(self, input: PaymentIntentInput) -> PaymentIntentView:
        if input.deposit_address and input.deposit_salt and input.deposit_factory:
            # Computed by the API and set as search attributes at start: no activity, no upsert.
            self._deposit = DepositAssignment(address=input.deposit_address, salt=input.deposit_salt, factory=input.deposit_factory)
        else:
            self._deposit = await workflow.execute_local_activity_method(
                PaymentIntentActivities.assign_deposit_address,
                AssignDepositInput(intent_id=input.intent_id, chain_id=input.chain_id),
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=DB_RETRY,
            )
            workflow.upsert_search_attributes(
                [SETTLE_CHAIN.value_set(chain_attribute(input.chain_id)), SETTLE_DEPOSIT_ADDRESS.value_set(self._deposit.address.lower())]
            )
        try:
            await self._record([EventType.PAYMENT_INTENT_CREATED], register=True)
        except (ActivityError, ApplicationError) as error:
            # Only an error no retry can mend gets here (DB_RETRY retries the rest): the intent was
            # never stored. The creation call learns why, and nothing is left running. (A local
            # activity's non-retryable failure arrives as its ApplicationError, not an ActivityError.)
            self._registration_failure = ApplicationError(
                "the payment intent could not be stored", type=INTENT_REGISTRATION_FAILED, non_retryable=True
            )
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise self._registration_failure from error
        self._registered = True
        # One timer per window for the intent's whole life (not one per wait): fewer history events.
        expiry = _Deadline(datetime.fromisoformat(input.expires_at))
        while self._state.status not in TERMINAL_STATUSES:
            await workflow.wait_condition(lambda: self._changed or expiry.passed)
            if self._changed:
                self._changed = False
                await self._record(self._pending_events())
            elif expiry.passed:
                await self._record(self._state.expire())

        # A late window: late payments still reach the intent, are recorded, evented, refundable.
        late_window = _Deadline(workflow.now() + LATE_WINDOW)
        while not late_window.passed:
            await workflow.wait_condition(lambda: self._changed or late_window.passed)
            if self._changed:
                self._changed = False
                await self._record(self._pending_events())
        return self._view()

    # ------------------------------------------------------------------ signals / updates / queries
    # The chain watcher sends these. Nothing a signal carries may fail a workflow task (Temporal
    # would retry that task for ever): what does not fit is counted, logged and ignored.
    @workflow.signal
    def payment_observed(self, signal: PaymentSignal) -> None:
        payment = payment_of_signal(signal)
        if payment is None:
            self._ignore("payment_observed", "malformed payment")
            return
        ignored_before = self._state.payments_ignored
        self._queue(self._state.observe_payment(payment) + self._state.observe_head(signal.head_block_number))
        if self._state.payments_ignored > ignored_before:
            self._ignore("payment_observed", f"over {PAYMENTS_PER_INTENT_MAX} payments")

    @workflow.signal
    def block_orphaned(self, signal: OrphanSignal) -> None:
        if not _is_hash(getattr(signal, "block_hash", None)):
            self._ignore("block_orphaned", "malformed block hash")
            return
        reorged_before = self._state.settled_payments_reorged
        self._queue(self._state.observe_orphaned_block(signal.block_hash))
        if self._state.settled_payments_reorged > reorged_before:
            workflow.logger.error(
                "intent %s: block %s, which holds a payment its settlement used, was reorganised away",
                self._input.intent_id, signal.block_hash,
            )

    @workflow.signal
    def head_advanced(self, signal: HeadSignal) -> None:
        head = getattr(signal, "head_block_number", None)
        if not _is_block_number(head):
            self._ignore("head_advanced", "malformed block number")
            return
        self._queue(self._state.observe_head(head))

    @workflow.update
    async def register(self) -> PaymentIntentView:
        """The creation call (update-with-start): returns once the intent is stored, or fails with
        the reason it could not be."""
        await workflow.wait_condition(lambda: self._registered or self._registration_failure is not None)
        if self._registration_failure is not None:
            raise self._registration_failure
        return self._view()

    @workflow.update
    async def cancel(self) -> PaymentIntentView:
        await workflow.wait_condition(lambda: self._registered or self._registration_failure is not None)
        if self._registration_failure is not None:
            raise self._registration_failure
        try:
            events = self._state.cancel()
        except IntentRuleViolation as error:
            raise ApplicationError(str(error), type=error.code, non_retryable=True) from error
        await self._record(events)
        return self._view()

    @cancel.validator
    def _validate_cancel(self) -> None:
        if self._state.payments:
            raise ValueError("an intent that has received a payment cannot be canceled")

    @workflow.query
    def view(self) -> PaymentIntentView:
        return self._view()

    # ------------------------------------------------------------------ internals
    def _ignore(self, signal_name: str, reason: str) -> None:
        self._signals_ignored += 1
        workflow.logger.warning("intent %s ignored a %s signal: %s", self._input.intent_id, signal_name, reason)

    def _queue(self, events: list[EventType]) -> None:
        self._pending.extend(events)
        self._changed = True

    def _pending_events(self) -> list[EventType]:
        events, self._pending = self._pending, []
        return events

    async def _record(self, events: list[EventType], *, register: bool = False) -> None:
        """One local activity per change: the ledger moves it calls for (settlement once;
        refundable money as it is confirmed), then the read model, the events and what the deposit
        address holds (which asks the sweeper to move it)."""
        event_ids = []
        for event_type in events:
            self._event_sequence += 1
            event_ids.append((intent_event_id(intent_id=self._input.intent_id, sequence=self._event_sequence), event_type))
        moves: list[LedgerMove] = []
        settlement = self._state.settlement
        if settlement is not None and not self._settlement_posted:
            moves += settlement_moves(self._input.intent_id, settlement)
        refundable = self._state.refundable_base_units
        if refundable > self._refundable_posted_base_units:
            moves += refundable_moves(self._input.intent_id, posted_before=self._refundable_posted_base_units, total=refundable)
        held = (settlement.gross_base_units if settlement else 0) + refundable
        await workflow.execute_local_activity_method(
            PaymentIntentActivities.record_payment_intent,
            IntentRecord(
                input=self._input, deposit=self._deposit, view=self._view(), events=event_ids, register=register,
                moves=moves, held_base_units=held if moves else 0,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
        )
        self._settlement_posted = settlement is not None
        self._refundable_posted_base_units = max(self._refundable_posted_base_units, refundable)
        status = self._state.status.value
        if status != self._status_attribute:
            workflow.upsert_search_attributes([SETTLE_STATUS.value_set(status)])
            self._status_attribute = status

    def _view(self) -> PaymentIntentView:
        assert self._deposit is not None
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
        )


HASH_LENGTH_MAX = 130
BLOCK_NUMBER_MAX = 2**63 - 1


def _is_hash(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= HASH_LENGTH_MAX


def _is_block_number(value: object) -> bool:
    return type(value) is int and 0 <= value <= BLOCK_NUMBER_MAX


def payment_of_signal(signal: object) -> Payment | None:
    """The payment a `payment_observed` signal reports, or None if it is malformed (the watcher
    sends well-formed ones; anything else with access to the namespace might not)."""
    amount = getattr(signal, "amount_base_units", None)
    log_index = getattr(signal, "log_index", None)
    sender = getattr(signal, "sender", None)
    if not (
        type(amount) is int and 0 < amount <= AMOUNT_BASE_UNITS_MAX
        and type(log_index) is int and 0 <= log_index <= BLOCK_NUMBER_MAX
        and _is_hash(getattr(signal, "tx_hash", None))
        and _is_hash(getattr(signal, "block_hash", None))
        and _is_hash(sender)
        and _is_block_number(getattr(signal, "block_number", None))
        and _is_block_number(getattr(signal, "head_block_number", None))
    ):
        return None
    return Payment(
        tx_hash=signal.tx_hash, log_index=log_index, amount_base_units=amount, block_number=signal.block_number,
        block_hash=signal.block_hash, sender=sender,
    )


class _Deadline:
    """A workflow timer that flips `passed` at `at`; waits combine it with other conditions."""

    def __init__(self, at: datetime) -> None:
        self.passed = False
        self._task = asyncio.create_task(self._sleep_until(at))

    async def _sleep_until(self, at: datetime) -> None:
        remaining_s = (at - workflow.now()).total_seconds()
        if remaining_s > 0:
            await asyncio.sleep(remaining_s)
        self.passed = True


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
        search_attributes=search_attributes(
            kind="payment_intent",
            tenant=input.tenant_id,
            status=IntentStatus.REQUIRES_PAYMENT.value,
            chain=chain_attribute(input.chain_id) if input.deposit_address else None,
            deposit_address=input.deposit_address.lower() if input.deposit_address else None,
        ),
    )
    return await client.execute_update_with_start_workflow(PaymentIntentWorkflow.register, start_workflow_operation=operation)
