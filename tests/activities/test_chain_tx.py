"""The signed-transaction outbox on a private anvil: one transaction per step key, whatever is
retried; concurrent senders on separate pools (as on several workers) never share a nonce."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from eth_account import Account
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from web3.exceptions import TransactionNotFound

from activities.chain_tx import SendTransactionInput, WaitTransactionInput
from activities.chains.evm import EvmChain
from activities.chains.evm.transactions import EvmTransactionActivities
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
        EvmTransactionActivities(pool, EvmChain.connect(private_chain["rpc_url"], chain_id=private_chain["chain_id"]), relayer=relayer)
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


async def test_a_stuck_transaction_is_replaced_with_higher_fees_and_mined_once(outbox, private_chain, db_pool):
    """The base fee jumps above what the signed transaction offers: the wait re-signs the same
    nonce with bumped fees, stores it, broadcasts it; the transfer happens exactly once."""
    w3 = private_chain["w3"]
    token = private_chain["contracts"]["TestUSDC"]
    target = Account.create().address
    key = f"test/{uuid.uuid4().hex}/stuck"
    env = ActivityEnvironment()
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        call = _transfer_call(w3, token, target, 777)
        sent = await env.run(outbox[0].send_transaction, SendTransactionInput(idempotency_key=key, to=token, data=call))
        w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(50 * 10**9)])
        w3.provider.make_request("evm_mine", [])  # a block the signed transaction cannot pay for
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction_receipt(sent.tx_hash)

        async def mine_every(interval_s: float, blocks_max: int) -> None:
            for _ in range(blocks_max):
                await asyncio.sleep(interval_s)
                w3.provider.make_request("evm_mine", [])

        miner = asyncio.create_task(mine_every(0.3, 60))
        try:
            mined = await env.run(
                outbox[1].wait_for_transaction,
                WaitTransactionInput(idempotency_key=key, wait_max_s=20, replace_after_s=0.5),
            )
        finally:
            miner.cancel()
    finally:
        w3.provider.make_request("evm_setAutomine", [True])

    assert mined.succeeded and mined.tx_hash != sent.tx_hash
    row = await db_pool.fetchrow("SELECT tx_hash, nonce, replaced_tx_hashes, status FROM chain_transactions WHERE idempotency_key = $1", key)
    assert row["tx_hash"] == mined.tx_hash and row["nonce"] == sent.nonce and row["status"] == "confirmed"
    assert list(row["replaced_tx_hashes"])[0] == sent.tx_hash
    assert w3.eth.get_transaction(mined.tx_hash)["nonce"] == sent.nonce
    contract = w3.eth.contract(address=token, abi=load_artifact("TestUSDC").abi)
    assert contract.functions.balanceOf(target).call() == 777
