"""Payment intents per second, and latency from the confirming block to settled.

Starts its own stack (fresh chain, fresh Temporal database) without the API or a worker, runs a
worker in this process, and measures, on the same Temporal server in the same run:
  - baseline: empty workflows/s, and workflows with as many (regular, local) activities as an intent runs;
  - intents: N created concurrently, each paid by its own transfer, settled and swept → intents/s;
  - at a fixed offered load, p50/p95 from the block that confirms the payment to `succeeded`
    (the events table's timestamp of payment_intent.succeeded);
  - the workflow history events (state transitions) one intent costs.

    .venv/bin/python bench/intents.py [--intents 40] [--load-per-s 5] [--load-seconds 8] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from cli.stack import Stack  # noqa: E402
from db.settings import Settings  # noqa: E402

WAIT_S_MAX = 300


@activity.defn(name="bench_noop")
async def bench_noop(step: int) -> int:
    return step


@workflow.defn(name="BenchEmptyWorkflow", sandboxed=False)
class BenchEmptyWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name="BenchActivitiesWorkflow", sandboxed=False)
class BenchActivitiesWorkflow:
    @workflow.run
    async def run(self, activities: int, local_activities: int) -> None:
        for step in range(activities):
            await workflow.execute_activity(bench_noop, step, start_to_close_timeout=timedelta(seconds=10))
        for step in range(local_activities):
            await workflow.execute_local_activity(bench_noop, step, start_to_close_timeout=timedelta(seconds=10))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def workflows_per_s(client: Client, task_queue: str, count: int, *, activities: tuple[int, int] | None) -> float:
    """Workflows/s: empty ones (activities None), or each running (regular, local) activities."""
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:8]
    if activities is None:
        coros = [client.execute_workflow(BenchEmptyWorkflow.run, id=f"bench-empty-{run_id}-{i}", task_queue=task_queue) for i in range(count)]
    else:
        coros = [
            client.execute_workflow(
                BenchActivitiesWorkflow.run, args=list(activities), id=f"bench-acts-{run_id}-{i}", task_queue=task_queue
            )
            for i in range(count)
        ]
    await asyncio.wait_for(asyncio.gather(*coros), timeout=WAIT_S_MAX)
    return count / (time.perf_counter() - started)


class Payer:
    """The dev customer paying deposit addresses, one transaction each, nonces in order."""

    def __init__(self, description: dict) -> None:
        from web3 import Web3

        from contracts import load_artifact

        self.w3 = Web3(Web3.HTTPProvider(description["rpc_url"], request_kwargs={"timeout": 30}))
        self.account = self.w3.eth.account.from_key(description["accounts"]["customer"]["private_key"])
        self.token = self.w3.eth.contract(address=description["contracts"]["TestUSDC"], abi=load_artifact("TestUSDC").abi)
        self.nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
        self.chain_id = description["chain_id"]

    def send(self, deposit_address: str, amount: int) -> bytes:
        call = self.token.functions.transfer(self.w3.to_checksum_address(deposit_address), amount)
        tx = call.build_transaction({"from": self.account.address, "nonce": self.nonce, "chainId": self.chain_id, "gas": 80_000})
        self.nonce += 1
        return self.w3.eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)

    def pay(self, deposit_address: str, amount: int) -> float:
        """Send and wait for the receipt; returns the wall time the confirming block was seen."""
        self.w3.eth.wait_for_transaction_receipt(self.send(deposit_address, amount), timeout=60, poll_latency=0.02)
        return time.time()


async def wait_settled(pool, intent_ids: list[str]) -> dict[str, float]:
    """intent id -> epoch seconds of its payment_intent.succeeded event."""
    deadline = time.monotonic() + WAIT_S_MAX
    while True:
        rows = await pool.fetch(
            "SELECT object_id, extract(epoch FROM created_at)::float8 AS at FROM events "
            "WHERE object_id = ANY($1::text[]) AND type = 'payment_intent.succeeded'",
            intent_ids,
        )
        if len(rows) == len(intent_ids) or time.monotonic() > deadline:
            return {row["object_id"]: row["at"] for row in rows}
        await asyncio.sleep(0.1)


async def run(args: argparse.Namespace) -> dict:
    from datetime import datetime, timezone

    import asyncpg

    from worker.main import build_worker, ensure_chain_watcher, ensure_sweeper, open_clients
    from workflows.payment_intent_workflow import start_payment_intent
    from contracts.deposit import intent_deposit_address
    from domain.payment_intents import PaymentIntentInput

    state_dir = Path(tempfile.mkdtemp(prefix="settle-bench-intents-"))
    os.chmod(state_dir, 0o755)
    stack = Stack(state_dir=state_dir, with_api=False, with_worker=False, database_url_override=None)
    try:
        log("starting a fresh stack (PostgreSQL, Temporal, anvil)")
        description = await asyncio.to_thread(stack.up)
        client = await Client.connect(description["temporal_address"], namespace=description["temporal_namespace"])
        task_queue = f"bench-intents-{uuid.uuid4().hex[:6]}"
        settings = Settings(
            env="test",
            database_url=description["database_url"],
            temporal_address=description["temporal_address"],
            rpc_url=description["rpc_url"],
            chain_id=description["chain_id"],
            contracts=description["contracts"],
            relayer_private_key=description["accounts"]["relayer"]["private_key"],
            task_queue=task_queue,
        )
        pool = await asyncpg.create_pool(description["database_url"], min_size=1, max_size=4)
        async with AsyncExitStack() as exit_stack:
            clients = await open_clients(client, settings, exit_stack)
            bench_queue = f"bench-baseline-{uuid.uuid4().hex[:6]}"
            async with build_worker(client, clients, settings), Worker(
                client, task_queue=bench_queue, workflows=[BenchEmptyWorkflow, BenchActivitiesWorkflow], activities=[bench_noop]
            ):
                await ensure_chain_watcher(client, settings)
                await ensure_sweeper(client, settings)
                asset = settings.assets()["usdc"]
                payer = Payer(description)

                def new_input() -> PaymentIntentInput:
                    intent_id = f"pi_{uuid.uuid4().hex[:24]}"
                    # As the API does: the deposit address computed before the workflow starts.
                    deposit_address, salt = intent_deposit_address(
                        intent_id, factory=settings.contracts["DepositFactory"], implementation=settings.contracts["DepositForwarder"]
                    )
                    return PaymentIntentInput(
                        intent_id=intent_id, tenant_id="bench", ledger_id="bench", chain_id=settings.chain_id, asset="usdc",
                        asset_key=asset.key, token_address=asset.token_address, decimals=asset.decimals, amount_base_units=1_000_000,
                        fee_bps=100, confirmations_required=1,
                        expires_at=(datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(), client_secret_hash="bench",
                        deposit_address=deposit_address, deposit_salt=salt, deposit_factory=settings.contracts["DepositFactory"],
                    )

                # -- throughput: N intents created concurrently, paid, settled
                log(f"throughput: {args.intents} intents created concurrently, then paid")
                started = time.perf_counter()
                inputs = [new_input() for _ in range(args.intents)]
                views = await asyncio.gather(*(start_payment_intent(client, i, task_queue=task_queue) for i in inputs))
                # Sent back to back (anvil mines each at once); the receipts are not waited for one by one.
                for view in views:
                    await asyncio.to_thread(payer.send, view.deposit_address, 1_000_000)
                settled = await wait_settled(pool, [i.intent_id for i in inputs])
                intents_per_s = len(settled) / (time.perf_counter() - started)
                assert len(settled) == args.intents, f"only {len(settled)} of {args.intents} settled"

                # -- latency at a fixed offered load: one intent created and paid every 1/load seconds
                count = int(args.load_per_s * args.load_seconds)
                log(f"latency: {count} intents at {args.load_per_s}/s")
                paid_at: dict[str, float] = {}
                interval_s = 1 / args.load_per_s
                next_at = time.perf_counter()
                for _ in range(count):
                    input = new_input()
                    view = await start_payment_intent(client, input, task_queue=task_queue)
                    paid_at[input.intent_id] = await asyncio.to_thread(payer.pay, view.deposit_address, 1_000_000)
                    next_at += interval_s
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                settled_at = await wait_settled(pool, list(paid_at))
                latencies = sorted(settled_at[i] - paid_at[i] for i in settled_at)
                history = await client.get_workflow_handle(inputs[0].intent_id).fetch_history()
                history_events = len(history.events)
                activities_per_intent = sum(1 for e in history.events if e.HasField("activity_task_scheduled_event_attributes"))
                local_markers = sum(1 for e in history.events if e.HasField("marker_recorded_event_attributes"))

                log("baselines on the same Temporal server")
                empty_per_s = await workflows_per_s(client, bench_queue, args.intents, activities=None)
                activities_baseline_per_s = await workflows_per_s(
                    client, bench_queue, args.intents, activities=(activities_per_intent, local_markers)
                )
        await pool.close()
        quantile = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
        return {
            "intents": args.intents,
            "intents_per_s": round(intents_per_s, 2),
            "empty_workflow_baseline_per_s": round(empty_per_s, 2),
            "activities_workflow_baseline_per_s": round(activities_baseline_per_s, 2),
            "activities_per_intent": activities_per_intent,
            "local_activities_per_intent": local_markers,
            "ratio_vs_empty_baseline": round(intents_per_s / empty_per_s, 3),
            "settle_latency_p50_s": round(statistics.median(latencies), 3),
            "settle_latency_p95_s": round(quantile(0.95), 3),
            "latency_samples": len(latencies),
            "offered_load_per_s": args.load_per_s,
            "state_transitions_per_intent": history_events,
        }
    finally:
        stack.down()
        shutil.rmtree(state_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intents", type=int, default=40)
    parser.add_argument("--load-per-s", type=float, default=5.0)
    parser.add_argument("--load-seconds", type=float, default=8.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.intents <= 1000 or not 0 < args.load_per_s <= 100 or not 0 < args.load_seconds <= 120:
        parser.error("bounds: 1 <= --intents <= 1000, 0 < --load-per-s <= 100, 0 < --load-seconds <= 120")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    print(f"intents settled: {result['intents_per_s']}/s ({result['intents']} concurrently created and paid)")
    print(f"baseline empty workflows: {result['empty_workflow_baseline_per_s']}/s  "
          f"(ratio {result['ratio_vs_empty_baseline']}; goal >= 0.5)")
    print(f"baseline workflows with {result['activities_per_intent']} activities and {result['local_activities_per_intent']} local "
          f"activities: {result['activities_workflow_baseline_per_s']}/s")
    print(f"confirming block -> succeeded at {result['offered_load_per_s']}/s: p50 {result['settle_latency_p50_s']} s, "
          f"p95 {result['settle_latency_p95_s']} s (goal p95 < 1 s; {result['latency_samples']} samples)")
    print(f"history events per intent: {result['state_transitions_per_intent']} "
          f"({result['activities_per_intent']} activities, {result['local_activities_per_intent']} local activities)")


if __name__ == "__main__":
    main()
