"""The signed-transaction outbox on a private anvil: one transaction per step key, whatever is
retried; concurrent senders on separate pools (as on several workers) never share a nonce."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from eth_account import Account
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from web3 import AsyncHTTPProvider, AsyncWeb3

from activities.chain_tx import SendTransactionInput, TransactionActivities, WaitTransactionInput
from contracts import load_artifact
from db.pool import create_pool


def _transfer_call(w3, token: str, to: str, amount: int) -> str:
    contract = w3.eth.contract(address=token, abi=load_artifact("TestUSDC").abi)
    return contract.functions.transfer(to, amount)._encode_transaction_data()


@pytest.fixture
async def outbox(private_chain, stack):
    pools = [await create_pool(stack["database_url"], size_max=5) for _ in range(2)]
    # The relayer of the private chain is the customer account (it holds tokens there).
    relayer = Account.from_key(private_chain["accounts"]["customer"]["private_key"])
    workers = [
        TransactionActivities(
            pool, AsyncWeb3(AsyncHTTPProvider(private_chain["rpc_url"])), relayer=relayer, chain_id=private_chain["chain_id"]
        )
        for pool in pools
    ]
    yield workers
    for pool in pools:
        await pool.close()


async def test_a_step_sends_one_transaction_however_often_it_runs(outbox, private_chain):
    w3 = private_chain["w3"]
    token = private_chain["contracts"]["TestUSDC"]
    target = Account.create().address
    key = f"test/{uuid.uuid4().hex}/pay"
    call = _transfer_call(w3, token, target, 1_234)
    env = ActivityEnvironment()
    first = await env.run(outbox[0].send_transaction, SendTransactionInput(idempotency_key=key, to=token, data=call))
    again = await env.run(outbox[1].send_transaction, SendTransactionInput(idempotency_key=key, to=token, data=call))
    assert again == first
    mined = await env.run(outbox[0].wait_for_transaction, WaitTransactionInput(idempotency_key=key))
    assert mined.succeeded and mined.tx_hash == first.tx_hash
    # Re-running after it was mined re-broadcasts the same bytes harmlessly.
    await env.run(outbox[1].send_transaction, SendTransactionInput(idempotency_key=key, to=token, data=call))
    await env.run(outbox[0].wait_for_transaction, WaitTransactionInput(idempotency_key=key))
    contract = w3.eth.contract(address=token, abi=load_artifact("TestUSDC").abi)
    assert contract.functions.balanceOf(target).call() == 1_234


async def test_concurrent_senders_on_two_pools_never_share_or_skip_a_nonce(outbox, private_chain, db_pool):
    w3 = private_chain["w3"]
    token = private_chain["contracts"]["TestUSDT"]
    target = Account.create().address
    run = uuid.uuid4().hex
    env = ActivityEnvironment()
    inputs = [
        SendTransactionInput(idempotency_key=f"test/{run}/{i}", to=token, data=_transfer_call(w3, token, target, 10 + i)) for i in range(16)
    ]
    # Each step twice, on alternating "workers", all at once.
    sent = await asyncio.gather(*(env.run(outbox[i % 2].send_transaction, inputs[i % 16]) for i in range(32)))
    by_key = {}
    for result in sent:
        assert by_key.setdefault(result.idempotency_key, result) == result
    nonces = sorted(r.nonce for r in by_key.values())
    assert nonces == list(range(nonces[0], nonces[0] + 16)), "nonces must be unique and gap-free"
    for item in inputs:
        assert (await env.run(outbox[0].wait_for_transaction, WaitTransactionInput(idempotency_key=item.idempotency_key))).succeeded
    contract = w3.eth.contract(address=token, abi=load_artifact("TestUSDT").abi)
    assert contract.functions.balanceOf(target).call() == sum(10 + i for i in range(16))
    stored = await db_pool.fetchval("SELECT count(*) FROM chain_transactions WHERE idempotency_key LIKE $1", f"test/{run}/%")
    assert stored == 16


async def test_a_call_that_would_revert_is_refused_before_signing(outbox, private_chain, db_pool):
    w3 = private_chain["w3"]
    token = private_chain["contracts"]["TestUSDC"]
    key = f"test/{uuid.uuid4().hex}/too-much"
    call = _transfer_call(w3, token, Account.create().address, 10**30)
    with pytest.raises(ApplicationError) as error:
        await ActivityEnvironment().run(outbox[0].send_transaction, SendTransactionInput(idempotency_key=key, to=token, data=call))
    assert error.value.type == "TransactionWouldRevert" and error.value.non_retryable
    assert await db_pool.fetchval("SELECT count(*) FROM chain_transactions WHERE idempotency_key = $1", key) == 0
