"""RefundWorkflow: reserve the refund's money in the ledger → pay the customer-supplied address from
the treasury through the signed-transaction outbox → post the reservation, or void it.

Its id is the refund id. The API inserts the refund row (under its intent's row lock, after
checking what the intent can still refund) and starts this workflow in one database transaction;
the first step waits for that transaction and finds the row, or ends if it rolled back.

    begin → build transfer → reserve (pending transfers) → send (key `<refund id>/transfer`)
          → wait mined → post → succeeded
                     ↘ reserve refused: failed, nothing reserved or sent
                     ↘ transfer would revert / reverted: void → failed

A step is retried with the same ids (ledger transfer ids, the outbox key, event ids), so a killed
worker or a retried activity neither reserves, sends nor posts twice.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.chain_tx import SendTransactionInput, TransactionActivities, WaitTransactionInput
    from activities.refunds import (
        BeginRefundInput,
        RefundActivities,
        RefundChange,
        RefundTransferCallInput,
        ReservationInput,
        SettleReservationInput,
    )
    from domain.errors import (
        LEDGER_REFUSALS,
        REFUND_ADDRESS_REFUSED,
        REFUND_INSUFFICIENT_BALANCE,
        REFUND_TREASURY_SHORT,
        TRANSACTION_NEVER_MINED_OR_REVERTED,
    )
    from domain.refunds import (
        RefundFailureCode,
        RefundInput,
        RefundRunOutcome,
        RefundStatus,
        RefundView,
        refund_transfer_key,
    )
    from domain.events import EventType, refund_event_id

from workflows.retry_policies import CHAIN_RETRY, DB_RETRY, NEVER_RETRIED
from workflows.search_attributes import SETTLE_STATUS, SETTLE_WALLET

RESERVE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=[REFUND_INSUFFICIENT_BALANCE, *LEDGER_REFUSALS, *NEVER_RETRIED],
)
# How long a refund waits for the intent's money to reach the treasury account (its sweep) before
# it fails with nothing reserved.
RESERVE_WAIT = timedelta(minutes=10)
TRANSFER_CONFIRMATIONS_MIN = 1


@workflow.defn
class RefundWorkflow:
    def __init__(self) -> None:
        self._view: RefundView | None = None

    @workflow.run
    async def run(self, input: RefundInput) -> RefundView:
        self._view = RefundView(id=input.refund_id, status=RefundStatus.PENDING.value)
        workflow.upsert_search_attributes([SETTLE_WALLET.value_set(input.address.lower())])
        begun = await workflow.execute_activity_method(
            RefundActivities.begin_refund,
            BeginRefundInput(refund_id=input.refund_id, intent_id=input.intent_id),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
        )
        if begun is None:
            # The API's transaction rolled back after starting us: no refund exists.
            self._view = RefundView(id=input.refund_id, status=RefundRunOutcome.ABANDONED.value)
            return self._view
        self._view = begun
        if begun.status != RefundStatus.PENDING.value:
            return begun  # a new run of a finished refund (reset): it already ended

        try:
            call = await workflow.execute_local_activity_method(
                RefundActivities.build_refund_transfer,
                RefundTransferCallInput(token_address=input.token_address, to=input.address, amount_base_units=input.amount_base_units),
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=DB_RETRY,
            )
        except ActivityError as error:
            code = RefundFailureCode.ADDRESS_REFUSED if _error_type(error) == REFUND_ADDRESS_REFUSED else RefundFailureCode.REFUNDS_UNAVAILABLE
            return await self._fail(input, code, _message(error))

        reservation = ReservationInput(
            refund_id=input.refund_id,
            tenant_id=input.tenant_id,
            ledger_id=input.ledger_id,
            asset_key=input.asset_key,
            from_refundable_base_units=input.from_refundable_base_units,
            from_balance_base_units=input.from_balance_base_units,
        )
        try:
            await workflow.execute_activity_method(
                RefundActivities.reserve_refund,
                reservation,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=RESERVE_WAIT,
                retry_policy=RESERVE_RETRY,
            )
        except ActivityError as error:
            code = _error_type(error)
            if code == REFUND_INSUFFICIENT_BALANCE:
                return await self._fail(input, RefundFailureCode.INSUFFICIENT_BALANCE, _message(error))
            # Out of time while the treasury account was short: Temporal ends the retries with
            # the last attempt's error, or with a timeout if an attempt was still running.
            if code == REFUND_TREASURY_SHORT or isinstance(error.cause, TimeoutError):
                return await self._fail(
                    input, RefundFailureCode.FUNDS_UNAVAILABLE, f"the payment's funds did not reach the treasury within {RESERVE_WAIT}"
                )
            return await self._fail(input, RefundFailureCode.LEDGER_REFUSED, _message(error))

        key = refund_transfer_key(input.refund_id)
        try:
            sent = await workflow.execute_activity_method(
                TransactionActivities.send_transaction,
                SendTransactionInput(idempotency_key=key, to=input.token_address, data=call),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=CHAIN_RETRY,
            )
            await self._change(RefundChange(refund_id=input.refund_id, tx_hash=sent.tx_hash))
            mined = await workflow.execute_activity_method(
                TransactionActivities.wait_for_transaction,
                WaitTransactionInput(idempotency_key=key, confirmations_min=TRANSFER_CONFIRMATIONS_MIN),
                start_to_close_timeout=timedelta(seconds=90),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=CHAIN_RETRY,
            )
        except ActivityError as error:
            if _error_type(error) not in TRANSACTION_NEVER_MINED_OR_REVERTED:
                raise
            # The money did not leave the treasury: release the reservation, then say so.
            await self._settle(reservation, post=False)
            return await self._fail(input, RefundFailureCode.TRANSFER_FAILED, _message(error))

        await self._settle(reservation, post=True)
        self._view = await self._change(
            RefundChange(
                refund_id=input.refund_id,
                status=RefundStatus.SUCCEEDED.value,
                tx_hash=mined.tx_hash,  # a fee-bumped replacement may be the one mined
                events=[(refund_event_id(refund_id=input.refund_id, status="succeeded"), EventType.REFUND_SUCCEEDED)],
            )
        )
        workflow.upsert_search_attributes([SETTLE_STATUS.value_set(RefundStatus.SUCCEEDED.value)])
        return self._view

    @workflow.query
    def view(self) -> RefundView | None:
        return self._view

    # ------------------------------------------------------------------ internals
    async def _settle(self, reservation: ReservationInput, *, post: bool) -> None:
        await workflow.execute_activity_method(
            RefundActivities.settle_refund_reservation,
            SettleReservationInput(reservation=reservation, post=post),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
        )

    async def _change(self, change: RefundChange) -> RefundView:
        view = await workflow.execute_local_activity_method(
            RefundActivities.record_refund_change,
            change,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
        )
        self._view = view
        return view

    async def _fail(self, input: RefundInput, code: RefundFailureCode, message: str) -> RefundView:
        view = await self._change(
            RefundChange(
                refund_id=input.refund_id,
                status=RefundStatus.FAILED.value,
                failure_code=code.value,
                failure_message=message[:500],
                events=[(refund_event_id(refund_id=input.refund_id, status="failed"), EventType.REFUND_FAILED)],
            )
        )
        workflow.upsert_search_attributes([SETTLE_STATUS.value_set(RefundStatus.FAILED.value)])
        return view


def _error_type(error: ActivityError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _message(error: ActivityError) -> str:
    cause = error.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause or error)


async def start_refund(client, input: RefundInput, *, task_queue: str) -> None:
    """Start the refund's workflow (its id is the refund id). The caller does this inside the
    database transaction that inserted the refund, before committing: see db.refunds.create_refund."""
    from temporalio.common import WorkflowIDConflictPolicy

    from workflows.search_attributes import search_attributes

    await client.start_workflow(
        RefundWorkflow.run,
        input,
        id=input.refund_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes(kind="refund", tenant=input.tenant_id, status=RefundStatus.PENDING.value),
        rpc_timeout=timedelta(seconds=5),
    )
