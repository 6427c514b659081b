"""A worker SIGKILLed while an intent settles: another worker finishes it, and every effect lands
once — one ledger posting per step, one sweep of the deposit address on chain, the exact amount in
the treasury."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

from cli.processes import stop_pid
from cli.stack import PROJECT_ROOT
from db.settings import Settings
from contracts import load_artifact
from contracts.deposit import deposit_salt
from tests.workflows.test_payment_intent_workflow import DUE, _input, _mine, _pay, _token_balance, _wait_swept, _wait_view
from workflows.chain_watcher_workflow import watcher_workflow_id
from workflows.sweeper_workflow import sweeper_workflow_id
from workflows.payment_intent_workflow import PaymentIntentWorkflow, start_payment_intent


def _worker(stack, private_chain, task_queue: str, log_path) -> subprocess.Popen:
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
        }
    )
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log, start_new_session=True)


async def test_worker_killed_mid_settlement_settles_once(stack, private_chain, temporal_client, db_pool, tmp_path):
    task_queue = f"intents-kill-{uuid.uuid4().hex[:8]}"
    settings = Settings(env="test", chain_id=private_chain["chain_id"], contracts=private_chain["contracts"], task_queue=task_queue)
    first = _worker(stack, private_chain, task_queue, tmp_path / "worker-1.log")
    second = None
    try:
        input = _input(settings, confirmations=1)
        view = await asyncio.wait_for(start_payment_intent(temporal_client, input, task_queue=task_queue), timeout=60)
        handle = temporal_client.get_workflow_handle(input.intent_id)
        treasury = private_chain["accounts"]["treasury"]["address"]
        treasury_before = _token_balance(private_chain, input.token_address, treasury)
        _pay(private_chain, token=input.token_address, to=view.deposit_address, amount=DUE)
        await _wait_view(handle, lambda v: v.status == "succeeded")
        os.kill(first.pid, signal.SIGKILL)  # somewhere in ledger posting / sweeping
        first.wait(timeout=10)
        _mine(private_chain, 1)
        second = _worker(stack, private_chain, task_queue, tmp_path / "worker-2.log")
        await _wait_swept(db_pool, input.intent_id, DUE, timeout_s=90)
        assert (await handle.query(PaymentIntentWorkflow.view)).status == "succeeded"
        assert _token_balance(private_chain, input.token_address, treasury) - treasury_before == DUE
        w3 = private_chain["w3"]
        factory = w3.eth.contract(address=private_chain["contracts"]["DepositFactory"], abi=load_artifact("DepositFactory").abi)
        sweeps = factory.events.Swept().get_logs(from_block=0, argument_filters={"salt": deposit_salt(input.intent_id)})
        assert [log["args"]["amount"] for log in sweeps] == [DUE]
        transfers = await db_pool.fetch("SELECT id, amount FROM ledger_transfers WHERE id LIKE $1 ORDER BY id", f"{input.intent_id}/%")
        assert [(r["id"].split("/", 1)[1], int(r["amount"])) for r in transfers] == [
            ("settle/fee", 250_000),
            ("settle/gross", DUE),
            (f"sweep/{DUE}", DUE),
        ]
        events = [r["type"] for r in await db_pool.fetch("SELECT type FROM events WHERE object_id = $1 ORDER BY id", input.intent_id)]
        assert events.count("payment_intent.succeeded") == 1 and events.count("payment_intent.swept") == 1
    finally:
        await temporal_client.get_workflow_handle(watcher_workflow_id(private_chain["chain_id"])).terminate("test done")
        await temporal_client.get_workflow_handle(sweeper_workflow_id(private_chain["chain_id"])).terminate("test done")
        for process in (first, second):
            if process is not None:
                stop_pid(process.pid, timeout_s=15)
