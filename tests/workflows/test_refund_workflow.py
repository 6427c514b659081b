"""RefundWorkflow end to end on a private anvil: refunds created over HTTP (the in-process API with
the real Temporal client), run by a worker of this module (watcher and sweeper included), paid from
the treasury to the customer's address through the outbox; the ledger's reservation posted or
voided. And the unhappy paths: the merchant's balance short, an allowance revoked, a transfer
reverted on chain, a retried send, a killed worker, concurrent requests racing for one intent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from eth_account import Account
from temporalio import activity
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.chain_tx import SendTransactionInput
from activities.chains.evm.transactions import EvmTransactionActivities
from domain.ledger import account_id
from api.app import create_app
from api.idempotency import IdempotencyContext
from cli.processes import stop_pid
from cli.stack import PROJECT_ROOT, TREASURY_ALLOWANCE_BASE_UNITS
from contracts import load_artifact
from contracts.deploy import TEST_TOKEN_NAMES, approve_spender
from db.chain import get_transaction
from db.ledger_invariants import check_ledger_invariants
from db.settings import ApiSettings, Settings
from domain.refunds import refund_transfer_key
from tests.api.conftest import GENEROUS_TIERS, TenantHandle, create_tenant, make_client
from worker.main import WORKFLOWS, activities_for, build_worker, ensure_chain_watcher, ensure_sweeper, open_clients
from workflows.chain_watcher_workflow import watcher_workflow_id
from workflows.payment_intent_workflow import PaymentIntentInput, PaymentIntentWorkflow, start_payment_intent
from workflows.refund_workflow import RefundWorkflow
from workflows.search_attributes import SETTLE_KIND, SETTLE_STATUS, SETTLE_WALLET
from workflows.sweeper_workflow import sweeper_workflow_id

DUE = 25_000_000  # 25.00
FEE_BPS = 100
CODES = ("customer_deposits", "treasury", "merchant_available", "platform_fees", "unallocated")
ARTIFACTS = {"usdc": "TestUSDC", "usdt": "TestUSDT"}


@dataclass
class RefundStack:
    settings: Settings
    clients: Any
    http: httpx.AsyncClient
    admin_headers: dict[str, str]
    api_settings: ApiSettings


def _settings(stack, private_chain, *, task_queue: str) -> Settings:
    return Settings(
        env="test",
        database_url=stack["database_url"],
        temporal_address=stack["temporal_address"],
        admin_api_key=stack["admin_api_key"],
        rpc_url=private_chain["rpc_url"],
        chain_id=private_chain["chain_id"],
        contracts=private_chain["contracts"],
        relayer_private_key=private_chain["accounts"]["relayer"]["private_key"],
        treasury_address=private_chain["accounts"]["treasury"]["address"],
        task_queue=task_queue,
    )


def _approve(private_chain, amount: int, *, tokens=TEST_TOKEN_NAMES) -> None:
    """The treasury's allowance for the relayer: `amount`, or none at all (0)."""
    accounts = private_chain["accounts"]
    for name in tokens:
        if amount == 0:
            _revoke(private_chain, name)
            continue
        approve_spender(
            private_chain["w3"],
            owner_private_key=accounts["treasury"]["private_key"],
            token_name=name,
            token_address=private_chain["contracts"][name],
            spender=accounts["relayer"]["address"],
            amount_base_units=amount,
        )


def _revoke(private_chain, name: str) -> None:
    w3 = private_chain["w3"]
    treasury = Account.from_key(private_chain["accounts"]["treasury"]["private_key"])
    token = w3.eth.contract(address=private_chain["contracts"][name], abi=load_artifact(name).abi)
    tx = token.functions.approve(private_chain["accounts"]["relayer"]["address"], 0).build_transaction(
        {"from": treasury.address, "nonce": w3.eth.get_transaction_count(treasury.address, "pending"), "chainId": w3.eth.chain_id}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(treasury.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1


@pytest.fixture(scope="module")
async def refunds(private_chain, stack, temporal_client, db_pool):
    _approve(private_chain, TREASURY_ALLOWANCE_BASE_UNITS)
    settings = _settings(stack, private_chain, task_queue=f"refunds-{uuid.uuid4().hex[:8]}")
    api_settings = ApiSettings(rate_limit_tiers=GENEROUS_TIERS, json_logs=False)
    async with AsyncExitStack() as exit_stack:
        clients = await open_clients(temporal_client, settings, exit_stack)
        async with build_worker(temporal_client, clients, settings):
            await ensure_chain_watcher(temporal_client, settings)
            await ensure_sweeper(temporal_client, settings)
            app = create_app(settings, api_settings, pool=db_pool, temporal_client=temporal_client)
            async with app.router.lifespan_context(app), make_client(app) as http:
                yield RefundStack(settings, clients, http, {"Authorization": f"Bearer {stack['admin_api_key']}"}, api_settings)
            for workflow_id in (watcher_workflow_id(settings.chain_id), sweeper_workflow_id(settings.chain_id)):
                await temporal_client.get_workflow_handle(workflow_id).terminate("tests done")


# ---------------------------------------------------------------------------- helpers
async def _merchant(refunds: RefundStack) -> TenantHandle:
    return await create_tenant(refunds.http, refunds.admin_headers, kind="merchant", fee_bps=FEE_BPS)


def _customer() -> str:
    return Account.create().address


def _mine(private_chain, blocks: int = 1) -> None:
    private_chain["w3"].provider.make_request("anvil_mine", [hex(blocks)])


def _token(private_chain, asset: str):
    w3 = private_chain["w3"]
    name = ARTIFACTS[asset]
    return w3.eth.contract(address=private_chain["contracts"][name], abi=load_artifact(name).abi)


def _balance_of(private_chain, asset: str, holder: str) -> int:
    return _token(private_chain, asset).functions.balanceOf(private_chain["w3"].to_checksum_address(holder)).call()


def _pay(private_chain, *, asset: str, to: str, amount: int) -> None:
    w3 = private_chain["w3"]
    sender = Account.from_key(private_chain["accounts"]["customer"]["private_key"])
    tx = _token(private_chain, asset).functions.transfer(w3.to_checksum_address(to), amount).build_transaction(
        {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address, "pending"), "chainId": w3.eth.chain_id}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1


async def _eventually(probe, *, what: str, timeout_s: float = 60, private_chain=None):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never: {what}")
        if private_chain is not None:
            _mine(private_chain)
        await asyncio.sleep(0.2)


async def _paid_intent(
    refunds: RefundStack, temporal_client, db_pool, private_chain, merchant: TenantHandle, *, paid: int, asset: str = "usdc",
    expires_in_s: int = 600, wait_swept: bool = True,
) -> PaymentIntentInput:
    """An intent of `merchant` for DUE, paid `paid`, final (succeeded, or expired if underpaid)."""
    token = refunds.settings.assets()[asset]
    input = PaymentIntentInput(
        intent_id=f"pi_{uuid.uuid4().hex[:24]}",
        tenant_id=merchant.id,
        ledger_id=merchant.id,
        chain_id=refunds.settings.chain_id,
        asset=asset,
        asset_key=token.key,
        token_address=token.token_address,
        decimals=token.decimals,
        amount_base_units=DUE,
        fee_bps=FEE_BPS,
        confirmations_required=1,
        expires_at=(datetime.now(timezone.utc) + timedelta(seconds=expires_in_s)).isoformat(),
        client_secret_hash="test",
    )
    view = await start_payment_intent(temporal_client, input, task_queue=refunds.settings.task_queue)
    _pay(private_chain, asset=asset, to=view.deposit_address, amount=paid)
    handle = temporal_client.get_workflow_handle(input.intent_id)
    final = "succeeded" if paid >= DUE else "expired"

    async def settled():
        view = await handle.query(PaymentIntentWorkflow.view)
        return view.status == final

    await _eventually(settled, what=f"intent {final}", private_chain=private_chain)
    if wait_swept:
        held = paid  # all of it: gross + excess, or what an expired intent received

        async def swept():
            return int(await db_pool.fetchval("SELECT amount_swept FROM payment_intents WHERE id = $1", input.intent_id) or 0) == held

        await _eventually(swept, what="intent swept")
    return input


async def _refund(refunds: RefundStack, merchant: TenantHandle, intent_id: str, *, amount: Any, address: str, key: str | None = None,
                  **body: Any) -> httpx.Response:
    headers = dict(merchant.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await refunds.http.post(f"/v1/payment_intents/{intent_id}/refunds", json={"amount": amount, "address": address, **body}, headers=headers)


async def _final(refunds: RefundStack, merchant: TenantHandle, refund_id: str, *, timeout_s: float = 90) -> dict:
    async def done():
        body = (await refunds.http.get(f"/v1/refunds/{refund_id}", headers=merchant.headers)).json()
        return body if body["status"] != "pending" else None

    return await _eventually(done, what=f"refund {refund_id} final", timeout_s=timeout_s)


async def _ledger(refunds: RefundStack, merchant: TenantHandle, asset: str = "usdc") -> dict[str, tuple[int, int]]:
    """Per account code: (posted debits - credits, pending debits - credits)."""
    asset_key = refunds.settings.assets()[asset].key
    ids = {code: account_id(ledger=merchant.id, asset=asset_key, code=code) for code in CODES}
    found = {account.id: account for account in await refunds.clients.ledger.lookup_accounts(list(ids.values()))}
    result = {}
    for code, id_ in ids.items():
        account = found.get(id_)
        result[code] = (0, 0) if account is None else (
            account.debits_posted - account.credits_posted, account.debits_pending - account.credits_pending
        )
    return result


async def _event_types(db_pool, object_id: str) -> list[str]:
    rows = await db_pool.fetch("SELECT type FROM events WHERE object_id = $1 ORDER BY created_at, id", object_id)
    return [row["type"] for row in rows]


async def _outbox_rows(db_pool, refund_id: str) -> int:
    return await db_pool.fetchval("SELECT count(*) FROM chain_transactions WHERE idempotency_key = $1", refund_transfer_key(refund_id))


# ---------------------------------------------------------------------------- happy paths
async def test_an_overpaid_excess_is_refunded_to_the_customer(refunds, private_chain, temporal_client, db_pool):
    merchant = await _merchant(refunds)
    treasury = refunds.settings.treasury_address
    treasury_before = _balance_of(private_chain, "usdc", treasury)
    # Refunded as soon as the intent succeeded: its sweep may still be on its way, and the refund
    # waits for the money to reach the treasury account.
    intent = await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=DUE + 5_000_000, wait_swept=False)
    customer = _customer()
    response = await _refund(refunds, merchant, intent.intent_id, amount="5000000", address=customer.lower(), reason="overpayment",
                             metadata={"ticket": "42"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["object"] == "refund" and created["id"].startswith("re_") and created["status"] == "pending"
    assert (created["amount"], created["amount_from_refundable"], created["amount_from_balance"]) == ("5000000", "5000000", "0")
    assert created["address"] == customer and created["payment_intent"] == intent.intent_id and created["reason"] == "overpayment"

    done = await _final(refunds, merchant, created["id"])
    assert done["status"] == "succeeded" and done["failure_code"] is None and done["tx_hash"].startswith("0x")
    assert _balance_of(private_chain, "usdc", customer) == 5_000_000
    assert _balance_of(private_chain, "usdc", treasury) - treasury_before == DUE + 5_000_000 - 5_000_000
    assert await _ledger(refunds, merchant) == {
        "customer_deposits": (0, 0),
        "treasury": (DUE, 0),
        "merchant_available": (-24_750_000, 0),
        "platform_fees": (-250_000, 0),
        "unallocated": (0, 0),
    }
    assert await check_ledger_invariants(db_pool, ledger=merchant.id) == []
    assert await _event_types(db_pool, created["id"]) == ["refund.created", "refund.succeeded"]
    succeeded = await db_pool.fetchval("SELECT data FROM events WHERE id = $1", f"evt_{created['id']}_succeeded")
    data = json.loads(succeeded) if isinstance(succeeded, str) else succeeded
    assert data["status"] == "succeeded" and data["amount"] == "5000000" and data["tx_hash"] == done["tx_hash"]
    stored = await get_transaction(db_pool, idempotency_key=refund_transfer_key(created["id"]))
    assert stored.tx_hash == done["tx_hash"] and stored.status == "confirmed"
    listed = (await refunds.http.get(f"/v1/payment_intents/{intent.intent_id}/refunds", headers=merchant.headers)).json()
    assert [refund["id"] for refund in listed["data"]] == [created["id"]]
    # The excess is spent; the payment itself remains refundable out of the merchant's balance.
    again = await _refund(refunds, merchant, intent.intent_id, amount=str(DUE + 1), address=customer)
    assert again.status_code == 409 and again.json()["error"]["code"] == "amount_too_large"


async def test_an_expired_underpaid_intent_is_refunded_in_usdt(refunds, private_chain, temporal_client, db_pool):
    merchant = await _merchant(refunds)
    intent = await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=1_000_000, asset="usdt", expires_in_s=4)
    customer = _customer()
    response = await _refund(refunds, merchant, intent.intent_id, amount=1_000_000, address=customer, reason="expired")
    assert response.status_code == 201, response.text
    done = await _final(refunds, merchant, response.json()["id"])
    assert done["status"] == "succeeded" and done["asset"] == "usdt"
    # TestUSDT's transferFrom returns nothing, as USDT's: the receipt tells, and the money arrived.
    assert _balance_of(private_chain, "usdt", customer) == 1_000_000
    ledger = await _ledger(refunds, merchant, "usdt")
    assert ledger["unallocated"] == (0, 0) and ledger["treasury"] == (0, 0) and ledger["merchant_available"] == (0, 0)
    nothing = await _refund(refunds, merchant, intent.intent_id, amount=1, address=customer)
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_refund"


async def test_a_whole_payment_is_refunded_from_the_balance_and_the_fee_is_not_returned(refunds, private_chain, temporal_client, db_pool):
    merchant = await _merchant(refunds)
    first = await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=DUE)
    customer = _customer()
    # The merchant earned 24.75 from this payment: refunding all 25.00 needs 0.25 more than that.
    short = await _refund(refunds, merchant, first.intent_id, amount=DUE, address=customer)
    assert short.status_code == 201, short.text
    failed = await _final(refunds, merchant, short.json()["id"])
    assert failed["status"] == "failed" and failed["failure_code"] == "insufficient_balance" and failed["tx_hash"] is None
    assert "merchant's available balance" in failed["failure_message"]
    assert await _outbox_rows(db_pool, failed["id"]) == 0 and _balance_of(private_chain, "usdc", customer) == 0
    assert await _event_types(db_pool, failed["id"]) == ["refund.created", "refund.failed"]
    assert (await _ledger(refunds, merchant))["merchant_available"] == (-24_750_000, 0)

    await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=DUE)
    # A failed refund gave its capacity back.
    whole = await _refund(refunds, merchant, first.intent_id, amount=str(DUE), address=customer, reason="requested_by_customer")
    assert whole.status_code == 201, whole.text
    assert (whole.json()["amount_from_refundable"], whole.json()["amount_from_balance"]) == ("0", str(DUE))
    done = await _final(refunds, merchant, whole.json()["id"])
    assert done["status"] == "succeeded"
    assert _balance_of(private_chain, "usdc", customer) == DUE
    ledger = await _ledger(refunds, merchant)
    assert ledger["merchant_available"] == (-2 * 24_750_000 + DUE, 0) and ledger["treasury"] == (DUE, 0)
    assert ledger["platform_fees"] == (-500_000, 0)
    assert await check_ledger_invariants(db_pool, ledger=merchant.id) == []
    listed = (await refunds.http.get("/v1/refunds", params={"payment_intent": first.intent_id}, headers=merchant.headers)).json()
    assert [(r["id"], r["status"]) for r in listed["data"]] == [(done["id"], "succeeded"), (failed["id"], "failed")]


# ---------------------------------------------------------------------------- capacity
async def test_over_capacity_is_refused_and_creates_nothing(refunds, private_chain, temporal_client, db_pool):
    merchant = await _merchant(refunds)
    intent = await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=DUE + 1_000, wait_swept=False)
    key = str(uuid.uuid4())
    response = await _refund(refunds, merchant, intent.intent_id, amount=DUE + 1_001, address=_customer(), key=key)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "amount_too_large" and error["param"] == "amount" and str(DUE + 1_000) in error["message"]
    assert await db_pool.fetchval("SELECT count(*) FROM refunds WHERE intent_id = $1", intent.intent_id) == 0
    # The refund id this key would have made: no workflow was started for it.
    refund_id = IdempotencyContext(key=key, owner=merchant.id).workflow_id("re")
    with pytest.raises(RPCError):
        await temporal_client.get_workflow_handle(refund_id).describe()
    assert await db_pool.fetchval("SELECT count(*) FROM events WHERE object_id = $1", refund_id) == 0


async def test_concurrent_refunds_never_exceed_what_is_refundable(refunds, private_chain, temporal_client, db_pool):
    merchant = await _merchant(refunds)
    intent = await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=DUE + 5_000_000)
    customer = _customer()
    # 30.00 refundable (5.00 excess + the 25.00 payment): two of three 12.00 refunds fit.
    responses = await asyncio.gather(
        *(_refund(refunds, merchant, intent.intent_id, amount=12_000_000, address=customer) for _ in range(3))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 201, 409], [response.text for response in responses]
    refused = next(response for response in responses if response.status_code == 409)
    assert refused.json()["error"]["code"] == "amount_too_large"
    created = [response.json() for response in responses if response.status_code == 201]
    assert sorted((r["amount_from_refundable"], r["amount_from_balance"]) for r in created) == [("0", "12000000"), ("5000000", "7000000")]
    for refund in created:
        assert (await _final(refunds, merchant, refund["id"]))["status"] == "succeeded"
    assert _balance_of(private_chain, "usdc", customer) == 24_000_000
    ledger = await _ledger(refunds, merchant)
    assert ledger["unallocated"] == (0, 0) and ledger["merchant_available"] == (-24_750_000 + 19_000_000, 0)
    assert ledger["treasury"] == (DUE + 5_000_000 - 24_000_000, 0)
    assert await check_ledger_invariants(db_pool, ledger=merchant.id) == []


# ---------------------------------------------------------------------------- faults
async def test_a_retried_send_and_a_second_run_of_the_step_send_one_transaction(refunds, stack, private_chain, temporal_client, db_pool):
    """The first attempt of `send_transaction` broadcasts, then its worker 'dies' before reporting:
    Temporal runs it again, which finds the stored transaction and re-broadcasts the same bytes."""
    merchant = await _merchant(refunds)
    intent = await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=DUE + 2_000_000)
    flaky_settings = _settings(stack, private_chain, task_queue=f"refunds-flaky-{uuid.uuid4().hex[:8]}")
    real = EvmTransactionActivities(db_pool, refunds.clients.chain, relayer=refunds.clients.relayer)
    attempts: list[str] = []

    @activity.defn(name="send_transaction")
    async def send_then_crash(input: SendTransactionInput):
        sent = await real.send_transaction(input)
        attempts.append(sent.tx_hash)
        if activity.info().attempt == 1:
            raise RuntimeError("worker lost after broadcasting")
        return sent

    activities = [a for a in activities_for(refunds.clients, flaky_settings) if getattr(a, "__name__", "") != "send_transaction"]
    flaky_app = create_app(flaky_settings, refunds.api_settings, pool=db_pool, temporal_client=temporal_client)
    customer = _customer()
    async with Worker(temporal_client, task_queue=flaky_settings.task_queue, workflows=WORKFLOWS, activities=[*activities, send_then_crash]):
        async with flaky_app.router.lifespan_context(flaky_app), make_client(flaky_app) as http:
            response = await http.post(f"/v1/payment_intents/{intent.intent_id}/refunds",
                                        json={"amount": "2000000", "address": customer}, headers=merchant.headers)
            assert response.status_code == 201, response.text
            refund_id = response.json()["id"]
            done = await _final(refunds, merchant, refund_id)
    assert done["status"] == "succeeded"
    assert len(attempts) == 2 and attempts[0] == attempts[1] == done["tx_hash"]
    assert await _outbox_rows(db_pool, refund_id) == 1
    assert _balance_of(private_chain, "usdc", customer) == 2_000_000

    # The step run once more, by hand, after the refund finished: the same transaction, nothing new.
    call = await refunds.clients.chain.w3.eth.get_transaction(done["tx_hash"])
    again = await ActivityEnvironment().run(
        real.send_transaction, SendTransactionInput(idempotency_key=refund_transfer_key(refund_id), to=intent.token_address, data=call["input"].to_0x_hex())
    )
    assert again.tx_hash == done["tx_hash"]
    _mine(private_chain, 2)
    assert await _outbox_rows(db_pool, refund_id) == 1
    assert _balance_of(private_chain, "usdc", customer) == 2_000_000
    # And its final record written again (a retried local activity): the intent counts it once.
    from db.refunds import record_refund
    from domain.refunds import RefundStatus

    await record_refund(db_pool, refund_id=refund_id, status=RefundStatus.SUCCEEDED, tx_hash=done["tx_hash"])
    refunded = await db_pool.fetchval("SELECT amount_refunded FROM payment_intents WHERE id = $1", intent.intent_id)
    assert int(refunded) == 2_000_000


def _worker_process(stack, private_chain, task_queue: str, log_path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        {
            "SETTLE_ENV": "test",
            "SETTLE_DATABASE_URL": stack["database_url"],
            "SETTLE_TEMPORAL_ADDRESS": stack["temporal_address"],
            "SETTLE_TASK_QUEUE": task_queue,
            "SETTLE_RPC_URL": private_chain["rpc_url"],
            "SETTLE_CHAIN_ID": str(private_chain["chain_id"]),
            "SETTLE_CONTRACTS": json.dumps(private_chain["contracts"]),
            "SETTLE_RELAYER_PRIVATE_KEY": private_chain["accounts"]["relayer"]["private_key"],
            "SETTLE_TREASURY_ADDRESS": private_chain["accounts"]["treasury"]["address"],
        }
    )
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log, start_new_session=True)


async def test_a_worker_killed_mid_refund_pays_once(refunds, stack, private_chain, temporal_client, db_pool, tmp_path):
    """Killed while its transaction waits to be mined (blocks held back): the money leaves once,
    and the next worker posts the reservation."""
    merchant = await _merchant(refunds)
    intent = await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=DUE + 3_000_000)
    settings = _settings(stack, private_chain, task_queue=f"refunds-kill-{uuid.uuid4().hex[:8]}")
    app = create_app(settings, refunds.api_settings, pool=db_pool, temporal_client=temporal_client)
    customer = _customer()
    w3 = private_chain["w3"]
    first = _worker_process(stack, private_chain, settings.task_queue, tmp_path / "worker-1.log")
    second = None
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        async with app.router.lifespan_context(app), make_client(app) as http:
            response = await http.post(f"/v1/payment_intents/{intent.intent_id}/refunds",
                                        json={"amount": 3_000_000, "address": customer}, headers=merchant.headers)
        assert response.status_code == 201, response.text
        refund_id = response.json()["id"]

        async def broadcast():
            stored = await get_transaction(db_pool, idempotency_key=refund_transfer_key(refund_id))
            return stored if stored is not None and stored.status == "broadcast" else None

        stored = await _eventually(broadcast, what="the refund's transaction broadcast", timeout_s=60)
        os.kill(first.pid, signal.SIGKILL)  # its wait_for_transaction polls a transaction not mined yet
        first.wait(timeout=10)
        w3.provider.make_request("evm_mine", [])
        w3.provider.make_request("evm_setAutomine", [True])
        assert w3.eth.get_transaction_receipt(stored.tx_hash)["status"] == 1
        pending = (await refunds.http.get(f"/v1/refunds/{refund_id}", headers=merchant.headers)).json()
        assert pending["status"] == "pending" and (await _ledger(refunds, merchant))["treasury"][1] == -3_000_000
        second = _worker_process(stack, private_chain, settings.task_queue, tmp_path / "worker-2.log")
        done = await _final(refunds, merchant, refund_id, timeout_s=120)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        for process in (first, second):
            if process is not None and process.poll() is None:
                stop_pid(process.pid)
    assert done["status"] == "succeeded" and done["tx_hash"] == stored.tx_hash
    assert await _outbox_rows(db_pool, refund_id) == 1
    assert _balance_of(private_chain, "usdc", customer) == 3_000_000
    ledger = await _ledger(refunds, merchant)
    assert ledger["unallocated"] == (0, 0) and ledger["treasury"] == (DUE, 0)
    assert await check_ledger_invariants(db_pool, ledger=merchant.id) == []
    assert await _event_types(db_pool, refund_id) == ["refund.created", "refund.succeeded"]


async def test_a_revoked_allowance_voids_the_reservation_and_fails_the_refund(refunds, private_chain, temporal_client, db_pool):
    merchant = await _merchant(refunds)
    intent = await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=DUE + 4_000_000)
    customer = _customer()
    before = await _ledger(refunds, merchant)
    _approve(private_chain, 0, tokens=("TestUSDC",))
    try:
        response = await _refund(refunds, merchant, intent.intent_id, amount=4_000_000, address=customer)
        assert response.status_code == 201, response.text
        failed = await _final(refunds, merchant, response.json()["id"])
    finally:
        _approve(private_chain, TREASURY_ALLOWANCE_BASE_UNITS, tokens=("TestUSDC",))
    assert failed["status"] == "failed" and failed["failure_code"] == "transfer_failed" and failed["tx_hash"] is None
    assert "revert" in failed["failure_message"]
    assert await _outbox_rows(db_pool, failed["id"]) == 0 and _balance_of(private_chain, "usdc", customer) == 0
    assert await _ledger(refunds, merchant) == before  # reserved, then voided: nothing moved
    voided = await refunds.clients.ledger.get_transfer(f"{failed['id']}/reserve/refundable")
    assert voided.pending_status == "voided"
    assert await check_ledger_invariants(db_pool, ledger=merchant.id) == []
    assert await _event_types(db_pool, failed["id"]) == ["refund.created", "refund.failed"]
    # Its capacity is back: the same refund now succeeds.
    retried = await _refund(refunds, merchant, intent.intent_id, amount=4_000_000, address=customer)
    assert (await _final(refunds, merchant, retried.json()["id"]))["status"] == "succeeded"
    assert _balance_of(private_chain, "usdc", customer) == 4_000_000


async def test_a_transfer_reverted_on_chain_voids_the_reservation(refunds, private_chain, temporal_client, db_pool):
    """Estimated fine, then the treasury revokes its allowance in the same block, ahead of it (a
    higher tip): the refund's transaction is mined and reverts."""
    merchant = await _merchant(refunds)
    intent = await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=DUE + 6_000_000)
    customer = _customer()
    before = await _ledger(refunds, merchant)
    w3 = private_chain["w3"]
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        response = await _refund(refunds, merchant, intent.intent_id, amount=6_000_000, address=customer)
        assert response.status_code == 201, response.text
        refund_id = response.json()["id"]

        async def broadcast():
            stored = await get_transaction(db_pool, idempotency_key=refund_transfer_key(refund_id))
            return stored if stored is not None and stored.status == "broadcast" else None

        stored = await _eventually(broadcast, what="the refund's transaction broadcast")
        treasury = Account.from_key(private_chain["accounts"]["treasury"]["private_key"])
        base_fee = w3.eth.get_block("latest")["baseFeePerGas"]
        tip = 50 * 10**9
        revoke = _token(private_chain, "usdc").functions.approve(private_chain["accounts"]["relayer"]["address"], 0).build_transaction(
            {"from": treasury.address, "nonce": w3.eth.get_transaction_count(treasury.address, "pending"), "chainId": w3.eth.chain_id,
             "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base_fee + tip, "gas": 100_000}
        )
        revoke_hash = w3.eth.send_raw_transaction(treasury.sign_transaction(revoke).raw_transaction)
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    try:
        assert w3.eth.get_transaction_receipt(revoke_hash)["status"] == 1
        receipt = w3.eth.get_transaction_receipt(stored.tx_hash)
        assert receipt["status"] == 0 and receipt["blockNumber"] == w3.eth.get_transaction_receipt(revoke_hash)["blockNumber"]
        failed = await _final(refunds, merchant, refund_id)
    finally:
        _approve(private_chain, TREASURY_ALLOWANCE_BASE_UNITS, tokens=("TestUSDC",))
    assert failed["status"] == "failed" and failed["failure_code"] == "transfer_failed" and failed["tx_hash"] == stored.tx_hash
    assert "reverted" in failed["failure_message"]
    assert (await get_transaction(db_pool, idempotency_key=refund_transfer_key(refund_id))).status == "failed"
    assert _balance_of(private_chain, "usdc", customer) == 0
    assert await _ledger(refunds, merchant) == before
    assert await check_ledger_invariants(db_pool, ledger=merchant.id) == []
    handle = temporal_client.get_workflow_handle_for(RefundWorkflow.run, refund_id)
    assert (await handle.result()).status == "failed"
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(SETTLE_KIND) == "refund" and attributes.get(SETTLE_STATUS) == "failed"
    assert attributes.get(SETTLE_WALLET) == customer.lower()
