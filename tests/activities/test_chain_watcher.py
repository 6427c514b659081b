"""The chain watcher on a private anvil: transfers to deposit addresses are matched once per
(tx hash, log index), the owning workflow is signalled, a reorg orphans what it replaced, and the
cursor survives a restart of the activity without missing or repeating a block."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import pytest
from eth_account import Account
from temporalio import workflow
from temporalio.testing import ActivityEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.chain_watcher import ChainWatcherActivities, WatchChainInput
from activities.chains.evm import EvmChain
from contracts import load_artifact
from contracts.deposit import deposit_salt, predict_deposit_address
from db import chain as chain_db
from db.ledger_store import LedgerStore


@dataclass
class Received:
    payments: list[dict] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)


@workflow.defn(sandboxed=False)
class SignalSinkWorkflow:
    """Stands in for PaymentIntentWorkflow: keeps what the watcher tells it."""

    def __init__(self) -> None:
        self._received = Received()

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name="payment_observed")
    def payment_observed(self, payload: dict) -> None:
        self._received.payments.append(payload)

    @workflow.signal(name="block_orphaned")
    def block_orphaned(self, payload: dict) -> None:
        self._received.orphaned.append(payload["block_hash"])

    @workflow.signal(name="head_advanced")
    def head_advanced(self, payload: dict) -> None:
        self._received.heads.append(payload["head_block_number"])

    @workflow.query
    def received(self) -> Received:
        return self._received


def _pay(w3, *, token: str, sender_key: str, to: str, amount: int) -> dict:
    contract = w3.eth.contract(address=w3.to_checksum_address(token), abi=load_artifact("TestUSDC").abi)
    sender = Account.from_key(sender_key)
    tx = contract.functions.transfer(to, amount).build_transaction(
        {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address, "pending"), "chainId": w3.eth.chain_id}
    )
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash)


async def _register(db_pool, private_chain, intent_id: str, token: str) -> str:
    contracts = private_chain["contracts"]
    address = predict_deposit_address(
        factory=contracts["DepositFactory"], implementation=contracts["DepositForwarder"], salt=deposit_salt(intent_id)
    )
    await chain_db.register_deposit_address(
        db_pool,
        deposit=chain_db.DepositAddress(chain_id=private_chain["chain_id"], address=address, intent_id=intent_id, token_address=token),
        salt="0x" + deposit_salt(intent_id).hex(),
    )
    return address


@pytest.fixture
async def watcher_ledger(db_pool):
    ledger = LedgerStore(db_pool)
    yield ledger
    await ledger.close()


@pytest.fixture
async def sink_worker(temporal_client):
    task_queue = f"sink-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_client, task_queue=task_queue, workflows=[SignalSinkWorkflow], workflow_runner=UnsandboxedWorkflowRunner()):
        yield task_queue


async def _received(handle, predicate, timeout_s: float = 15) -> Received:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        received = await handle.query(SignalSinkWorkflow.received)
        if predicate(received) or asyncio.get_running_loop().time() > deadline:
            return received
        await asyncio.sleep(0.1)


async def test_watcher_matches_signals_survives_restart_and_reorg(private_chain, db_pool, temporal_client, sink_worker, watcher_ledger):
    w3 = private_chain["w3"]
    chain_id = private_chain["chain_id"]
    usdc = private_chain["contracts"]["TestUSDC"].lower()
    usdt = private_chain["contracts"]["TestUSDT"].lower()
    customer_key = private_chain["accounts"]["customer"]["private_key"]
    intent_id = f"pi_test_{uuid.uuid4().hex[:16]}"
    handle = await temporal_client.start_workflow(SignalSinkWorkflow.run, id=intent_id, task_queue=sink_worker)
    deposit = await _register(db_pool, private_chain, intent_id, usdc)
    watcher = ChainWatcherActivities(db_pool, EvmChain.connect(private_chain["rpc_url"], chain_id=private_chain["chain_id"]), temporal_client, watcher_ledger)
    env = ActivityEnvironment()
    watch = WatchChainInput(chain_id=chain_id, token_addresses=[usdc, usdt], run_for_s=1.0, poll_interval_s=0.05,
                            start_block=w3.eth.block_number + 1)

    first = await env.run(watcher.watch_chain, watch)  # sets the cursor at the head
    first_payment = _pay(w3, token=usdc, sender_key=customer_key, to=deposit, amount=1_000)
    _pay(w3, token=usdt, sender_key=customer_key, to=deposit, amount=777)  # wrong token: not this intent's
    second = await env.run(watcher.watch_chain, watch)
    assert second.next_block > first.next_block
    received = await _received(handle, lambda r: len(r.payments) >= 1)
    assert [(p["amount_base_units"], p["block_number"]) for p in received.payments] == [(1_000, first_payment["blockNumber"])]

    # A restart (a new activity run) neither repeats nor misses a block.
    third = await env.run(watcher.watch_chain, watch)
    assert third.next_block >= second.next_block and third.payments_seen == 0
    assert len((await handle.query(SignalSinkWorkflow.received)).payments) == 1

    # A second payment, then a reorg that replaces its block: the watcher tells the intent.
    second_payment = _pay(w3, token=usdc, sender_key=customer_key, to=deposit, amount=2_000)
    await env.run(watcher.watch_chain, watch)
    received = await _received(handle, lambda r: len(r.payments) >= 2)
    assert received.payments[1]["block_hash"] == "0x" + bytes(second_payment["blockHash"]).hex()
    depth = w3.eth.block_number - second_payment["blockNumber"] + 1
    w3.provider.make_request("anvil_reorg", [depth, []])
    assert w3.eth.get_block(second_payment["blockNumber"])["hash"] != second_payment["blockHash"]
    reorged = await env.run(watcher.watch_chain, watch)
    assert reorged.reorgs == 1
    received = await _received(handle, lambda r: len(r.orphaned) >= 1)
    assert received.orphaned == ["0x" + bytes(second_payment["blockHash"]).hex()]
    row = await db_pool.fetchrow(
        "SELECT orphaned FROM intent_payments WHERE chain_id = $1 AND tx_hash = $2",
        chain_id, "0x" + bytes(second_payment["transactionHash"]).hex(),
    )
    assert row["orphaned"] is True
    amounts = await db_pool.fetch("SELECT amount, orphaned FROM intent_payments WHERE intent_id = $1 ORDER BY amount", intent_id)
    assert [(int(r["amount"]), r["orphaned"]) for r in amounts] == [(1_000, False), (2_000, True)]
    await handle.terminate("test done")


async def test_one_transaction_with_two_transfers_is_two_payments(private_chain, db_pool, temporal_client, sink_worker, watcher_ledger):
    """An exchange's batch withdrawal: one transaction, one Transfer log per deposit address (and
    two to the same one): each (tx hash, log index) is its own payment, none dropped as a duplicate."""
    from contracts.deploy import deploy_contract

    w3 = private_chain["w3"]
    chain_id = private_chain["chain_id"]
    usdc = private_chain["contracts"]["TestUSDC"]
    customer = private_chain["accounts"]["customer"]
    ids = [f"pi_test_{uuid.uuid4().hex[:16]}" for _ in range(2)]
    handles = [await temporal_client.start_workflow(SignalSinkWorkflow.run, id=i, task_queue=sink_worker) for i in ids]
    addresses = [await _register(db_pool, private_chain, i, usdc.lower()) for i in ids]
    watcher = ChainWatcherActivities(db_pool, EvmChain.connect(private_chain["rpc_url"], chain_id=private_chain["chain_id"]), temporal_client, watcher_ledger)
    env = ActivityEnvironment()
    watch = WatchChainInput(chain_id=chain_id, token_addresses=[usdc], run_for_s=0.5, poll_interval_s=0.05)
    await env.run(watcher.watch_chain, watch)

    batch_sender = deploy_contract(w3, deployer_private_key=customer["private_key"], name="TestBatchSender")
    sender = Account.from_key(customer["private_key"])
    token = w3.eth.contract(address=usdc, abi=load_artifact("TestUSDC").abi)
    batch = w3.eth.contract(address=batch_sender, abi=load_artifact("TestBatchSender").abi)
    for call in (token.functions.approve(batch_sender, 100), batch.functions.send(usdc, [addresses[0], addresses[1], addresses[0]], [5, 6, 7])):
        tx = call.build_transaction({"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address, "pending"), "chainId": chain_id})
        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
        assert receipt["status"] == 1

    result = await env.run(watcher.watch_chain, watch)
    assert result.payments_seen == 3
    expected = {ids[0]: [5, 7], ids[1]: [6]}
    for intent_id, handle in zip(ids, handles):
        received = await _received(handle, lambda r: len(r.payments) >= len(expected[intent_id]))
        assert sorted(p["amount_base_units"] for p in received.payments) == expected[intent_id]
        assert {p["tx_hash"] for p in received.payments} == {"0x" + bytes(receipt["transactionHash"]).hex()}
    # Watching the same range again (a crash before the cursor moved) stores nothing twice.
    await chain_db.set_cursor(db_pool, chain_id=chain_id, next_block=receipt["blockNumber"])
    again = await env.run(watcher.watch_chain, watch)
    assert again.payments_seen == 3
    for handle in handles:
        await handle.terminate("test done")
    rows = await db_pool.fetchval("SELECT count(*) FROM intent_payments WHERE intent_id = ANY($1::text[])", ids)
    assert rows == 3


async def test_a_payment_to_a_closed_intent_is_recorded_late_evented_once_and_posted_refundable(
    private_chain, db_pool, temporal_client, sink_worker, watcher_ledger
):
    """After an intent's late window its workflow is closed: the watcher itself marks the payment
    late, writes `payment_intent.payment_late` once (the intent's read model, through the API's
    serializer), and once the payment is confirmed posts it as unattributed refundable money and
    asks the sweeper to move it."""
    import json

    from domain.ledger import account_id
    from domain.money import asset_key

    chain_id = private_chain["chain_id"]
    usdc = private_chain["contracts"]["TestUSDC"]
    intent_id = f"pi_test_{uuid.uuid4().hex[:16]}"
    tenant_id = f"tenant_{uuid.uuid4().hex[:8]}"
    handle = await temporal_client.start_workflow(SignalSinkWorkflow.run, id=intent_id, task_queue=sink_worker)
    await handle.terminate("its late window is over")
    address = await _register(db_pool, private_chain, intent_id, usdc.lower())
    await db_pool.execute(
        """
        INSERT INTO payment_intents (id, tenant_id, status, chain_id, asset, token_address, deposit_address, amount, fee_bps,
            confirmations_required, client_secret_hash, expires_at)
        VALUES ($1, $2, 'expired', $3, 'usdc', $4, $5, 1000000, 100, 1, 'x', now())
        """,
        intent_id, tenant_id, chain_id, usdc.lower(), address.lower(),
    )
    watcher = ChainWatcherActivities(db_pool, EvmChain.connect(private_chain["rpc_url"], chain_id=private_chain["chain_id"]), temporal_client, watcher_ledger)
    env = ActivityEnvironment()
    watch = WatchChainInput(chain_id=chain_id, token_addresses=[usdc], run_for_s=0.5, poll_interval_s=0.05)
    await env.run(watcher.watch_chain, watch)
    receipt = _pay(private_chain["w3"], token=usdc, sender_key=private_chain["accounts"]["customer"]["private_key"], to=address, amount=4_321)
    await env.run(watcher.watch_chain, watch)
    await chain_db.set_cursor(db_pool, chain_id=chain_id, next_block=receipt["blockNumber"])  # the same range again
    await env.run(watcher.watch_chain, watch)

    row = await db_pool.fetchrow("SELECT late, unattributed, unattributed_posted FROM intent_payments WHERE intent_id = $1", intent_id)
    assert (row["late"], row["unattributed"], row["unattributed_posted"]) == (True, True, True)
    rows = await db_pool.fetch("SELECT tenant_id, data FROM events WHERE object_id = $1 AND type = 'payment_intent.payment_late'", intent_id)
    assert len(rows) == 1 and rows[0]["tenant_id"] == tenant_id
    data = json.loads(rows[0]["data"])
    assert data["status"] == "expired" and data["id"] == intent_id
    assert [(p["amount"], p["late"]) for p in data["payments"]] == [("4321", True)]
    # Posted once however many passes saw it: refundable, in the ledger, due for a sweep.
    intent = await db_pool.fetchrow("SELECT amount_refundable, amount_unattributed FROM payment_intents WHERE id = $1", intent_id)
    assert (int(intent["amount_refundable"]), int(intent["amount_unattributed"])) == (4_321, 4_321)
    key = asset_key(chain_id=chain_id, code="usdc")
    accounts = {
        a.id: a for a in await watcher_ledger.lookup_accounts(
            [account_id(ledger=tenant_id, asset=key, code=code) for code in ("customer_deposits", "unallocated")]
        )
    }
    deposits = accounts[account_id(ledger=tenant_id, asset=key, code="customer_deposits")]
    unallocated = accounts[account_id(ledger=tenant_id, asset=key, code="unallocated")]
    assert (deposits.debits_posted, unallocated.credits_posted) == (4_321, 4_321)
    sweep = await db_pool.fetchrow("SELECT held_base_units, unattributed_base_units FROM sweep_requests WHERE intent_id = $1", intent_id)
    assert (int(sweep["held_base_units"]), int(sweep["unattributed_base_units"])) == (0, 4_321)
