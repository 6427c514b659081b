"""Refunds' side effects: find the refund its creator committed, reserve its money in the ledger
(pending transfers), build the treasury's token transfer to the customer, post or void the
reservation, and write the read model and events. The transfer itself goes through the outbox
(activities.chain_tx) under `<refund id>/transfer`, so a refund sends at most one transaction."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from eth_utils import to_checksum_address
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.chains import ChainAdapter
from activities.ledger_postings import account_key, ensure_accounts, result_code
from db import refunds as refunds_db
from db.ledger_store import LedgerStore
from domain.errors import LEDGER_TRANSFER_REFUSED, REFUNDS_UNAVAILABLE
from domain.errors import REFUND_ADDRESS_REFUSED as ADDRESS_REFUSED
from domain.errors import REFUND_INSUFFICIENT_BALANCE as INSUFFICIENT_BALANCE
from domain.errors import REFUND_TREASURY_SHORT as TREASURY_SHORT
from domain.events import EventType, refund_event_id
from domain.ledger import AccountCode, AccountKey, CreateTransferResult, NewTransfer, PendingStatus, TransferFlags, parse_account_id
from domain.refunds import RefundFunding, RefundStatus, RefundView, ReservationLeg, reservation_legs

REFUND_TRANSFER_CODE = "refund"


@dataclass(frozen=True)
class BeginRefundInput:
    refund_id: str
    intent_id: str


@dataclass(frozen=True)
class RefundTransferCallInput:
    token_address: str
    to: str
    amount_base_units: int


@dataclass(frozen=True)
class ReservationInput:
    refund_id: str
    tenant_id: str
    ledger_id: str
    asset_key: str
    from_refundable_base_units: int
    from_balance_base_units: int


@dataclass(frozen=True)
class SettleReservationInput:
    reservation: ReservationInput
    post: bool  # True: the transfer was mined, the money left; False: it did not, release it


@dataclass(frozen=True)
class RefundChange:
    refund_id: str
    status: str | None = None  # "succeeded" / "failed"; None: only the tx hash changes
    tx_hash: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    events: list[tuple[str, str]] | None = None  # (event id, event type)


class RefundActivities:
    def __init__(self, pool: asyncpg.Pool, ledger: LedgerStore, *, chain: ChainAdapter, treasury_address: str | None) -> None:
        self._pool = pool
        self._ledger = ledger
        self._chain = chain
        self._treasury = to_checksum_address(treasury_address) if treasury_address else None

    @activity.defn
    async def begin_refund(self, input: BeginRefundInput) -> RefundView | None:
        """The refund as the API committed it, with its `refund.created` event; None if the API's
        transaction rolled back after starting this workflow (then there is nothing to do)."""
        refund = await refunds_db.find_created_refund(self._pool, refund_id=input.refund_id, intent_id=input.intent_id)
        if refund is None:
            return None
        if refund.status == RefundStatus.PENDING:
            refund = await refunds_db.record_refund(
                self._pool, refund_id=refund.id, events=[(refund_event_id(refund_id=refund.id, status="created"), EventType.REFUND_CREATED)]
            )
        return _view(refund)

    @activity.defn
    async def build_refund_transfer(self, input: RefundTransferCallInput) -> str:
        """`transferFrom(treasury, customer, amount)` on the token: the relayer moves the money out
        of the treasury, which approved it at deploy. TestUSDT (like USDT) returns nothing from it;
        the receipt's status is what tells."""
        if self._treasury is None:
            raise ApplicationError(
                "no treasury address is configured (SETTLE_TREASURY_ADDRESS)", type=REFUNDS_UNAVAILABLE, non_retryable=True
            )
        assert input.amount_base_units > 0
        to = to_checksum_address(input.to)
        if to == self._treasury:
            # The API refuses it where it knows the treasury; a worker configured apart still does.
            raise ApplicationError("a refund cannot be paid to the treasury itself", type=ADDRESS_REFUSED, non_retryable=True)
        call = self._chain.token_transfer_from_call(
            token_address=input.token_address, source=self._treasury, target=to, amount_base_units=input.amount_base_units
        )
        return call.data

    @activity.defn
    async def reserve_refund(self, input: ReservationInput) -> None:
        """Pending transfers out of `unallocated` / `merchant_available` into `treasury`, linked:
        all or none. The accounts' flags refuse an overdraft."""
        legs = _legs(input)
        await ensure_accounts(self._ledger, keys=[_account(input, code) for leg in legs for code in (leg.debit_code, leg.credit_code)])
        transfers = [
            NewTransfer(
                id=leg.reserve_transfer_id,
                debit_account_id=_account(input, leg.debit_code).id,
                credit_account_id=_account(input, leg.credit_code).id,
                amount=leg.amount_base_units,
                ledger=input.ledger_id,
                asset=input.asset_key,
                code=REFUND_TRANSFER_CODE,
                flags=TransferFlags.PENDING | (TransferFlags.LINKED if index < len(legs) - 1 else TransferFlags.NONE),
            )
            for index, leg in enumerate(legs)
        ]
        results = await self._ledger.create_transfers(transfers)
        failed = [(transfer, code) for transfer, code in zip(transfers, map(result_code, results)) if code not in _SUCCESSFUL]
        cause = next(((transfer, code) for transfer, code in failed if code != CreateTransferResult.LINKED_EVENT_FAILED), None)
        if cause is None:
            assert not failed
            await self._refuse_a_voided_reservation(transfers, results)
            activity.logger.info("refund %s reserved %d base units", input.refund_id, sum(leg.amount_base_units for leg in legs))
            return
        transfer, code = cause
        if code == CreateTransferResult.EXCEEDS_CREDITS:
            merchant = parse_account_id(transfer.debit_account_id).code is AccountCode.MERCHANT_AVAILABLE
            source = "the merchant's available balance" if merchant else "the unallocated funds"
            raise ApplicationError(
                f"{source} cannot cover {transfer.amount} base units ({transfer.id}: {code})", type=INSUFFICIENT_BALANCE, non_retryable=True
            )
        if code == CreateTransferResult.EXCEEDS_DEBITS:
            # The treasury account holds what was swept into it: the intent's sweep is on its way.
            raise ApplicationError(f"the treasury holds less than {transfer.amount} base units so far ({transfer.id})", type=TREASURY_SHORT)
        raise ApplicationError(f"transfer {transfer.id}: {code}", type=LEDGER_TRANSFER_REFUSED, non_retryable=True)

    @activity.defn
    async def settle_refund_reservation(self, input: SettleReservationInput) -> None:
        """Post the reservation (the money left the treasury) or void it (it did not), linked."""
        legs = _legs(input.reservation)
        transfers = [
            NewTransfer(
                id=leg.post_transfer_id if input.post else leg.void_transfer_id,
                pending_id=leg.reserve_transfer_id,
                flags=(TransferFlags.POST_PENDING if input.post else TransferFlags.VOID_PENDING)
                | (TransferFlags.LINKED if index < len(legs) - 1 else TransferFlags.NONE),
            )
            for index, leg in enumerate(legs)
        ]
        results = await self._ledger.create_transfers(transfers)
        for transfer, code in zip(transfers, map(result_code, results)):
            if code not in _SUCCESSFUL:
                # Resolved the other way, or never reserved: the workflow's order forbids both.
                raise ApplicationError(f"transfer {transfer.id}: {code}", type=LEDGER_TRANSFER_REFUSED, non_retryable=True)
        activity.logger.info("refund %s reservation %s", input.reservation.refund_id, PendingStatus.POSTED if input.post else PendingStatus.VOIDED)

    @activity.defn
    async def record_refund_change(self, change: RefundChange) -> RefundView:
        refund = await refunds_db.record_refund(
            self._pool,
            refund_id=change.refund_id,
            status=RefundStatus(change.status) if change.status else None,
            tx_hash=change.tx_hash,
            failure_code=change.failure_code,
            failure_message=change.failure_message,
            events=change.events,
        )
        if change.events:
            activity.logger.info("refund %s: %s", change.refund_id, ", ".join(event_type for _, event_type in change.events))
        return _view(refund)

    async def _refuse_a_voided_reservation(self, transfers: list[NewTransfer], results: list) -> None:
        """A reservation found again (`exists`) must still be pending or posted: a voided one means
        this refund already failed (a workflow reset replaying it), and sending now would pay with
        nothing reserved."""
        for transfer, code in zip(transfers, map(result_code, results)):
            if code == CreateTransferResult.EXISTS:
                stored = await self._ledger.get_transfer(transfer.id)
                if stored is not None and stored.pending_status == PendingStatus.VOIDED:
                    raise ApplicationError(
                        f"reservation {transfer.id} was voided: the refund already failed", type=LEDGER_TRANSFER_REFUSED, non_retryable=True
                    )


_SUCCESSFUL = (CreateTransferResult.OK, CreateTransferResult.EXISTS)


def _legs(input: ReservationInput) -> list[ReservationLeg]:
    funding = RefundFunding(
        from_refundable_base_units=input.from_refundable_base_units, from_balance_base_units=input.from_balance_base_units
    )
    return reservation_legs(input.refund_id, funding)


def _account(input: ReservationInput, code: str) -> AccountKey:
    return account_key(ledger_id=input.ledger_id, asset_key=input.asset_key, code=code)


def _view(refund: refunds_db.StoredRefund) -> RefundView:
    return RefundView(
        id=refund.id, status=refund.status, tx_hash=refund.tx_hash, failure_code=refund.failure_code, failure_message=refund.failure_message
    )

