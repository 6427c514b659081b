"""PaymentIntentWorkflow on a private anvil, with a worker of its own (watcher included): paid,
confirmed, settled in the ledger, swept to the treasury; and the unhappy paths."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone

import pytest
from eth_account import Account
from temporalio.client import WorkflowUpdateFailedError

from domain.ledger import account_id
from contracts import load_artifact
from db.events import get_event
from db.ledger_store import LedgerStore
from db.payment_intents import find_payment_intent, stored_intent_object
from db.settings import Settings
from domain.events import intent_swept_event_id
from worker.main import build_worker, ensure_chain_watcher, ensure_sweeper, open_clients
from workflows.chain_watcher_workflow import watcher_workflow_id
from workflows.sweeper_workflow import sweeper_workflow_id
from workflows.payment_intent_workflow import PaymentIntentInput, PaymentIntentWorkflow, start_payment_intent

DUE = 25_000_000  # 25.00 USDC


@pytest.fixture(scope="module")
async def intent_worker(private_chain, stack, temporal_client):
    task_queue = f"intents-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        env="test",
        database_url=stack["database_url"],
        temporal_address=stack["temporal_address"],
        rpc_url=private_chain["rpc_url"],
        chain_id=private_chain["chain_id"],
        contracts=private_chain["contracts"],
        relayer_private_key=private_chain["accounts"]["relayer"]["private_key"],
        task_queue=task_queue,
    )
    async with AsyncExitStack() as exit_stack:
        clients = await open_clients(temporal_client, settings, exit_stack)
        worker = build_worker(temporal_client, clients, settings)
        async with worker:
            await ensure_chain_watcher(temporal_client, settings)
            await ensure_sweeper(temporal_client, settings)
            yield {"settings": settings, "task_queue": task_queue, "ledger": clients.ledger}
            await temporal_client.get_workflow_handle(watcher_workflow_id(settings.chain_id)).terminate("tests done")
            await temporal_client.get_workflow_handle(sweeper_workflow_id(settings.chain_id)).terminate("tests done")


def _input(settings: Settings, *, asset: str = "usdc", amount: int = DUE, confirmations: int = 2, expires_in_s: int = 600,
           fee_bps: int = 100) -> PaymentIntentInput:
    token = settings.assets()[asset]
    tenant = f"tenant_{uuid.uuid4().hex[:10]}"
    return PaymentIntentInput(
        intent_id=f"pi_{uuid.uuid4().hex[:24]}",
        tenant_id=tenant,
        ledger_id=tenant,
        chain_id=settings.chain_id,
        asset=asset,
        asset_key=token.key,
        token_address=token.token_address,
        decimals=token.decimals,
        amount_base_units=amount,
        fee_bps=fee_bps,
        confirmations_required=confirmations,
        expires_at=(datetime.now(timezone.utc) + timedelta(seconds=expires_in_s)).isoformat(),
        client_secret_hash="test",
        description="test order",
    )


def _pay(private_chain, *, token: str, to: str, amount: int, asset: str = "TestUSDC") -> dict:
    w3 = private_chain["w3"]
    sender = Account.from_key(private_chain["accounts"]["customer"]["private_key"])
    contract = w3.eth.contract(address=w3.to_checksum_address(token), abi=load_artifact(asset).abi)
    tx = contract.functions.transfer(w3.to_checksum_address(to), amount).build_transaction(
        {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address, "pending"), "chainId": w3.eth.chain_id}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1
    return receipt


def _mine(private_chain, blocks: int) -> None:
    private_chain["w3"].provider.make_request("anvil_mine", [hex(blocks)])


async def _wait_view(handle, predicate, timeout_s: float = 30):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        view = await handle.query(PaymentIntentWorkflow.view)
        if predicate(view):
            return view
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"intent never reached the expected state: {view}")
        await asyncio.sleep(0.1)


async def _wait_swept(db_pool, intent_id: str, amount: int, timeout_s: float = 30) -> None:
    """The chain's sweeper moved `amount` of this intent to the treasury (per the read model)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        swept = await db_pool.fetchval("SELECT amount_swept FROM payment_intents WHERE id = $1", intent_id)
        if swept is not None and int(swept) == amount:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"intent {intent_id} swept {swept}, expected {amount}")
        await asyncio.sleep(0.1)


async def _balances(ledger: LedgerStore, input: PaymentIntentInput) -> dict[str, int]:
    codes = ["customer_deposits", "treasury", "merchant_available", "platform_fees", "unallocated"]
    ids = [account_id(ledger=input.ledger_id, asset=input.asset_key, code=code) for code in codes]
    accounts = {a.id: a for a in await ledger.lookup_accounts(ids)}
    result = {}
    for code, id_ in zip(codes, ids):
        account = accounts.get(id_)
        result[code] = 0 if account is None else account.debits_posted - account.credits_posted
    return result


def _token_balance(private_chain, token: str, holder: str) -> int:
    w3 = private_chain["w3"]
    contract = w3.eth.contract(address=w3.to_checksum_address(token), abi=load_artifact("TestUSDC").abi)
    return contract.functions.balanceOf(w3.to_checksum_address(holder)).call()


@pytest.mark.parametrize("asset, artifact", [("usdc", "TestUSDC"), ("usdt", "TestUSDT")])
async def test_paid_confirmed_settled_and_swept(intent_worker, private_chain, temporal_client, db_pool, asset, artifact):
    settings = intent_worker["settings"]
    input = _input(settings, asset=asset)
    view = await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    assert view.status == "requires_payment" and view.deposit_address.startswith("0x")
    treasury = private_chain["accounts"]["treasury"]["address"]
    treasury_before = _token_balance(private_chain, input.token_address, treasury)

    _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=DUE, asset=artifact)
    handle = temporal_client.get_workflow_handle(input.intent_id)
    await _wait_view(handle, lambda v: v.status == "processing")
    _mine(private_chain, 1)
    view = await _wait_view(handle, lambda v: v.status == "succeeded")
    assert (view.fee, view.net) == ("250000", "24750000")
    await _wait_swept(db_pool, input.intent_id, DUE)

    assert _token_balance(private_chain, input.token_address, treasury) - treasury_before == DUE
    assert _token_balance(private_chain, input.token_address, view.deposit_address) == 0
    balances = await _balances(intent_worker["ledger"], input)
    assert balances == {"customer_deposits": 0, "treasury": DUE, "merchant_available": -24_750_000, "platform_fees": -250_000, "unallocated": 0}
    row = await db_pool.fetchrow("SELECT status, amount_received, fee, net FROM payment_intents WHERE id = $1", input.intent_id)
    assert (row["status"], int(row["amount_received"]), int(row["fee"]), int(row["net"])) == ("succeeded", DUE, 250_000, 24_750_000)
    events = [r["type"] for r in await db_pool.fetch("SELECT type FROM events WHERE object_id = $1 ORDER BY id", input.intent_id)]
    assert events == ["payment_intent.created", "payment_intent.processing", "payment_intent.succeeded", "payment_intent.swept"]
    # The swept event carries the intent's read model through the API's serializer: what GET answers now.
    swept = await get_event(
        db_pool, tenant_id=input.tenant_id, event_id=intent_swept_event_id(intent_id=input.intent_id, swept_total_base_units=DUE)
    )
    assert swept.data == stored_intent_object(await find_payment_intent(db_pool, intent_id=input.intent_id))
    assert (swept.data["status"], swept.data["amount_swept"], swept.data["amount_received"]) == ("succeeded", str(DUE), str(DUE))


async def test_same_intent_id_twice_is_one_intent(intent_worker, temporal_client, db_pool):
    input = _input(intent_worker["settings"])
    first = await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    second = await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    assert first == second
    assert await db_pool.fetchval("SELECT count(*) FROM payment_intents WHERE id = $1", input.intent_id) == 1


async def test_underpaid_then_topped_up(intent_worker, private_chain, temporal_client, db_pool):
    input = _input(intent_worker["settings"])
    view = await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    handle = temporal_client.get_workflow_handle(input.intent_id)
    _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=DUE - 1_000_000)
    _mine(private_chain, 3)
    view = await _wait_view(handle, lambda v: v.amount_remaining == "1000000" and all(p.confirmations >= 2 for p in v.payments))
    assert view.status == "processing"
    # Confirmed but short: new blocks are not news to it (each would be a signal and a workflow task).
    signals_before = (await _history_event_types(handle)).count("workflow_execution_signaled_event_attributes")
    for _ in range(5):
        _mine(private_chain, 1)
        await asyncio.sleep(0.3)
    assert (await _history_event_types(handle)).count("workflow_execution_signaled_event_attributes") == signals_before
    _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=1_000_000)
    _mine(private_chain, 1)
    view = await _wait_view(handle, lambda v: v.status == "succeeded")
    assert len(view.payments) == 2
    await _wait_swept(db_pool, input.intent_id, DUE)


async def test_overpaid_settles_the_due_and_keeps_the_excess_refundable(intent_worker, private_chain, temporal_client, db_pool):
    input = _input(intent_worker["settings"])
    view = await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=DUE + 5_000_000)
    _mine(private_chain, 1)
    handle = temporal_client.get_workflow_handle(input.intent_id)
    view = await _wait_view(handle, lambda v: v.status == "succeeded")
    assert view.amount_refundable == "5000000"
    await _wait_swept(db_pool, input.intent_id, DUE + 5_000_000)
    balances = await _balances(intent_worker["ledger"], input)
    assert balances["unallocated"] == -5_000_000 and balances["treasury"] == DUE + 5_000_000 and balances["customer_deposits"] == 0


async def test_underpaid_at_expiry_is_refundable_and_a_late_payment_is_recorded(intent_worker, private_chain, temporal_client, db_pool):
    input = _input(intent_worker["settings"], expires_in_s=4, confirmations=1)
    view = await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    handle = temporal_client.get_workflow_handle(input.intent_id)
    _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=1_000)
    view = await _wait_view(handle, lambda v: v.status == "expired" and v.amount_refundable == "1000", timeout_s=30)
    await _wait_swept(db_pool, input.intent_id, 1_000)
    _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=2_000)
    view = await _wait_view(handle, lambda v: v.amount_refundable == "3000")
    await _wait_swept(db_pool, input.intent_id, 3_000)
    assert [p.late for p in view.payments] == [False, True]
    events = [r["type"] for r in await db_pool.fetch("SELECT type FROM events WHERE object_id = $1 ORDER BY id", input.intent_id)]
    assert "payment_intent.expired" in events and "payment_intent.payment_late" in events
    balances = await _balances(intent_worker["ledger"], input)
    assert balances == {"customer_deposits": 0, "treasury": 3_000, "merchant_available": 0, "platform_fees": 0, "unallocated": -3_000}


async def test_cancel_only_while_nothing_received(intent_worker, private_chain, temporal_client, db_pool):
    input = _input(intent_worker["settings"])
    await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    handle = temporal_client.get_workflow_handle(input.intent_id)
    view = await handle.execute_update(PaymentIntentWorkflow.cancel)
    assert view.status == "canceled"
    assert await db_pool.fetchval("SELECT status FROM payment_intents WHERE id = $1", input.intent_id) == "canceled"

    paid = _input(intent_worker["settings"])
    view = await start_payment_intent(temporal_client, paid, task_queue=intent_worker["task_queue"])
    _pay(private_chain, token=paid.token_address, to=view.deposit_address, amount=10)
    paid_handle = temporal_client.get_workflow_handle(paid.intent_id)
    await _wait_view(paid_handle, lambda v: v.status == "processing")
    with pytest.raises(WorkflowUpdateFailedError):
        await paid_handle.execute_update(PaymentIntentWorkflow.cancel)
    assert (await paid_handle.query(PaymentIntentWorkflow.view)).status == "processing"


async def test_reorg_before_confirmation_sends_it_back_then_a_new_payment_settles(intent_worker, private_chain, temporal_client, db_pool):
    input = _input(intent_worker["settings"], confirmations=4)
    view = await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    handle = temporal_client.get_workflow_handle(input.intent_id)
    receipt = _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=DUE)
    await _wait_view(handle, lambda v: v.status == "processing")
    w3 = private_chain["w3"]
    depth = w3.eth.block_number - receipt["blockNumber"] + 1
    w3.provider.make_request("anvil_reorg", [depth, []])
    view = await _wait_view(handle, lambda v: v.status == "requires_payment")
    assert [p.orphaned for p in view.payments] == [True]
    assert _token_balance(private_chain, input.token_address, view.deposit_address) == 0
    _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=DUE)
    _mine(private_chain, 4)
    view = await _wait_view(handle, lambda v: v.status == "succeeded")
    assert [p.orphaned for p in view.payments] == [True, False]
    await _wait_swept(db_pool, input.intent_id, DUE)


async def test_intents_settled_together_are_swept_in_one_batch_transaction(intent_worker, private_chain, temporal_client, db_pool):
    """The chain's sweeper gathers due deposit addresses into one `sweepBatch` transaction; each
    intent gets its own sweep move in the ledger and its own event."""
    from contracts.deposit import deposit_salt

    inputs = [_input(intent_worker["settings"], amount=1_000_000 + i, confirmations=2) for i in range(3)]
    views = [await start_payment_intent(temporal_client, i, task_queue=intent_worker["task_queue"]) for i in inputs]
    for input, view in zip(inputs, views):
        _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=input.amount_base_units)
    _mine(private_chain, 1)  # all three confirm at the same head
    for input in inputs:
        await _wait_swept(db_pool, input.intent_id, input.amount_base_units)

    w3 = private_chain["w3"]
    factory = w3.eth.contract(address=private_chain["contracts"]["DepositFactory"], abi=load_artifact("DepositFactory").abi)
    sweeps = [
        factory.events.Swept().get_logs(from_block=0, argument_filters={"salt": deposit_salt(input.intent_id)}) for input in inputs
    ]
    assert [[log["args"]["amount"] for log in logs] for logs in sweeps] == [[i.amount_base_units] for i in inputs]
    assert len({logs[0]["transactionHash"] for logs in sweeps}) == 1
    for input in inputs:
        balances = await _balances(intent_worker["ledger"], input)
        assert balances["treasury"] == input.amount_base_units and balances["customer_deposits"] == 0
        swept_events = await db_pool.fetchval(
            "SELECT count(*) FROM events WHERE object_id = $1 AND type = 'payment_intent.swept'", input.intent_id
        )
        assert swept_events == 1


async def test_an_intent_is_findable_by_chain_deposit_address_and_status(intent_worker, temporal_client):
    """What ops type into the Web UI's search box: the deposit address a customer paid, the chain."""
    input = _input(intent_worker["settings"])
    view = await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    query = (
        f"SettleDepositAddress = '{view.deposit_address.lower()}' AND SettleChain = 'evm:{input.chain_id}' "
        f"AND SettleKind = 'payment_intent' AND SettleTenant = '{input.tenant_id}' AND SettleStatus = 'requires_payment'"
    )
    deadline = asyncio.get_running_loop().time() + 15
    found: list[str] = []
    while not found and asyncio.get_running_loop().time() < deadline:
        found = [execution.id async for execution in temporal_client.list_workflows(query)]
        await asyncio.sleep(0.2)
    assert found == [input.intent_id]


def _pay_in_one_block(private_chain, *, token: str, to: str, amounts: list[int]) -> None:
    """Many transfers from the customer, mined together in one block."""
    w3 = private_chain["w3"]
    sender = Account.from_key(private_chain["accounts"]["customer"]["private_key"])
    contract = w3.eth.contract(address=w3.to_checksum_address(token), abi=load_artifact("TestUSDC").abi)
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        hashes = []
        for index, amount in enumerate(amounts):
            tx = contract.functions.transfer(w3.to_checksum_address(to), amount).build_transaction(
                {"from": sender.address, "nonce": nonce + index, "chainId": w3.eth.chain_id, "gas": 100_000}
            )
            hashes.append(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    receipts = [w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    assert all(r["status"] == 1 for r in receipts) and len({r["blockNumber"] for r in receipts}) == 1


async def _history_event_types(handle) -> list[str]:
    return [event.WhichOneof("attributes") async for event in handle.fetch_history_events()]


async def test_dust_beyond_the_payment_cap_cannot_wedge_an_intent(intent_worker, private_chain, temporal_client, db_pool):
    """More dust transfers than an intent accepts, then the full amount: the intent succeeds, the
    dust beyond the cap is posted as unattributed refundable money and swept, and the workflow's
    history stays bounded with no failed workflow task."""
    from domain.payment_intents import PAYMENTS_PER_INTENT_MAX, PAYMENTS_RESERVED_TO_COMPLETE

    input = _input(intent_worker["settings"], confirmations=2)
    view = await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    handle = temporal_client.get_workflow_handle(input.intent_id)
    dust_count = PAYMENTS_PER_INTENT_MAX + 30
    _pay_in_one_block(private_chain, token=input.token_address, to=view.deposit_address, amounts=[1] * dust_count)
    attributed_dust = PAYMENTS_PER_INTENT_MAX - PAYMENTS_RESERVED_TO_COMPLETE
    await _wait_view(handle, lambda v: len(v.payments) == attributed_dust)
    _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=DUE)
    _mine(private_chain, 2)

    view = await _wait_view(handle, lambda v: v.status == "succeeded", timeout_s=60)
    assert len(view.payments) == attributed_dust + 1
    assert view.amount_refundable == str(attributed_dust)  # the intent's own excess: the dust it took
    unattributed = dust_count - attributed_dust
    await _wait_swept(db_pool, input.intent_id, DUE + dust_count, timeout_s=60)
    row = await db_pool.fetchrow("SELECT amount_unattributed, amount_refundable FROM payment_intents WHERE id = $1", input.intent_id)
    assert (int(row["amount_unattributed"]), int(row["amount_refundable"])) == (unattributed, dust_count)
    flags = await db_pool.fetchrow(
        "SELECT count(*) FILTER (WHERE unattributed) AS unattributed, count(*) FILTER (WHERE unattributed_posted) AS posted "
        "FROM intent_payments WHERE intent_id = $1",
        input.intent_id,
    )
    assert (flags["unattributed"], flags["posted"]) == (unattributed, unattributed)
    balances = await _balances(intent_worker["ledger"], input)
    assert balances == {
        "customer_deposits": 0, "treasury": DUE + dust_count, "merchant_available": -24_750_000, "platform_fees": -250_000,
        "unallocated": -dust_count,
    }
    assert _token_balance(private_chain, input.token_address, view.deposit_address) == 0

    history = await _history_event_types(handle)
    assert "workflow_task_failed_event_attributes" not in history
    signals = history.count("workflow_execution_signaled_event_attributes")
    # Payment signals are capped; the rest are the few heads that confirmed the payments.
    assert signals <= PAYMENTS_PER_INTENT_MAX + 10, signals
    assert len(history) < 6 * PAYMENTS_PER_INTENT_MAX, len(history)


async def test_malformed_signals_are_ignored_and_the_intent_still_settles(intent_worker, private_chain, temporal_client, db_pool):
    """Anyone who can signal the namespace might send garbage: it is counted and ignored, never a
    failed workflow task."""
    input = _input(intent_worker["settings"], confirmations=1)
    view = await start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"])
    handle = temporal_client.get_workflow_handle(input.intent_id)
    good = {
        "chain_id": input.chain_id, "tx_hash": "0x" + "ab" * 32, "log_index": 0, "token_address": input.token_address,
        "sender": "0x" + "11" * 20, "amount_base_units": 5, "block_number": 1, "block_hash": "0x" + "cd" * 32,
        "head_block_number": 1,
    }
    for bad in (
        {**good, "amount_base_units": -5},
        {**good, "amount_base_units": 0},
        {**good, "amount_base_units": 2**256},
        {**good, "amount_base_units": "5"},
        {**good, "log_index": -1},
        {**good, "tx_hash": ""},
        {**good, "block_hash": "x" * 10_000},
        {"tx_hash": "0x01"},
        "not an object",
    ):
        await handle.signal("payment_observed", bad)
    await handle.signal("block_orphaned", {"block_hash": None})
    await handle.signal("head_advanced", {"head_block_number": "12"})
    await handle.signal("head_advanced", {"head_block_number": -1})
    assert (await handle.query(PaymentIntentWorkflow.view)).status == "requires_payment"

    _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=DUE)
    view = await _wait_view(handle, lambda v: v.status == "succeeded")
    assert [p.amount for p in view.payments] == [str(DUE)]
    assert "workflow_task_failed_event_attributes" not in await _history_event_types(handle)


async def test_an_intent_the_database_refuses_fails_its_creation_at_once_and_leaves_nothing_running(
    intent_worker, temporal_client, db_pool
):
    """Past the API's validation, data PostgreSQL cannot store (a NUL byte) is refused once, not
    retried for ever: the creation call gets a typed failure and the workflow is closed."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.exceptions import ApplicationError

    from domain.errors import INTENT_REGISTRATION_FAILED

    input = _input(intent_worker["settings"])
    input.description = "a NUL \x00 byte"
    started = asyncio.get_running_loop().time()
    with pytest.raises(WorkflowUpdateFailedError) as raised:
        await asyncio.wait_for(start_payment_intent(temporal_client, input, task_queue=intent_worker["task_queue"]), timeout=20)
    assert asyncio.get_running_loop().time() - started < 10
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == INTENT_REGISTRATION_FAILED
    assert "\x00" not in str(cause)
    handle = temporal_client.get_workflow_handle(input.intent_id)
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    assert await db_pool.fetchval("SELECT count(*) FROM payment_intents WHERE id = $1", input.intent_id) == 0
    assert await db_pool.fetchval("SELECT count(*) FROM events WHERE object_id = $1", input.intent_id) == 0
