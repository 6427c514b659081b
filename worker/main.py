"""The worker: registers every workflow and activity on one task queue. Stateless: kill it at any
point and another one carries on from Temporal's history."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import httpx
import prometheus_client
from eth_account import Account
from eth_account.signers.local import LocalAccount
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.chain import ChainActivities
from activities.chains.evm import EvmChain
from activities.chains.evm.transactions import EvmTransactionActivities
from activities.chain_watcher import ChainWatcherActivities
from activities.hello import HelloActivities
from activities.payment_intents import PaymentIntentActivities
from activities.refunds import RefundActivities
from activities.sweeps import SweepActivities
from activities.webhook_transport import create_webhook_http_client
from activities.webhooks import webhook_activities
from db.ledger_store import LedgerStore
from db.pool import create_pool
from db.settings import Settings, get_settings
from worker.interceptors import SettleInterceptor
from workflows.chain_watcher_workflow import ChainWatcherInput, ChainWatcherWorkflow, watcher_workflow_id
from workflows.event_dispatch_workflow import WEBHOOK_WORKFLOWS, start_event_dispatcher
from workflows.hello_workflow import HelloWorkflow
from workflows.payment_intent_workflow import PaymentIntentWorkflow
from workflows.refund_workflow import RefundWorkflow
from workflows.search_attributes import search_attributes
from workflows.sweeper_workflow import SweeperInput, SweeperWorkflow, sweeper_workflow_id

logger = logging.getLogger("settle.worker")

WORKFLOWS = [HelloWorkflow, ChainWatcherWorkflow, PaymentIntentWorkflow, SweeperWorkflow, RefundWorkflow, *WEBHOOK_WORKFLOWS]


@dataclass
class WorkerClients:
    """What activities need, built once per worker process."""

    temporal: Client
    pool: asyncpg.Pool
    chain: EvmChain  # the chain adapter of the chain this worker serves
    ledger: LedgerStore
    relayer: LocalAccount
    webhook_http: httpx.AsyncClient


def activities_for(clients: WorkerClients, settings: Settings) -> list:
    chain = ChainActivities(clients.chain, chain_id=settings.chain_id)
    hello = HelloActivities(clients.pool)
    watcher = ChainWatcherActivities(clients.pool, clients.chain, clients.temporal, clients.ledger)
    transactions = EvmTransactionActivities(clients.pool, clients.chain, relayer=clients.relayer)
    activities = [chain.read_chain_head, hello.record_hello_run, watcher.watch_chain, transactions.send_transaction,
                  transactions.wait_for_transaction, *webhook_activities(clients.pool, clients.webhook_http, settings=settings.webhooks)]
    refunds = RefundActivities(clients.pool, clients.ledger, chain=clients.chain, treasury_address=settings.treasury_address)
    activities += [refunds.begin_refund, refunds.build_refund_transfer, refunds.reserve_refund, refunds.settle_refund_reservation,
                   refunds.record_refund_change]
    if "DepositFactory" in settings.contracts:
        intents = PaymentIntentActivities(
            clients.pool,
            clients.ledger,
            chain_id=settings.chain_id,
            deposit_factory=settings.contracts["DepositFactory"],
            deposit_implementation=settings.contracts["DepositForwarder"],
        )
        sweeps = SweepActivities(clients.pool, clients.ledger, chain=clients.chain, factory_address=settings.contracts["DepositFactory"])
        activities += [intents.assign_deposit_address, intents.record_payment_intent,
                       sweeps.wait_for_sweeps_due, sweeps.claim_sweep_batch, sweeps.complete_sweep_batch,
                       sweeps.release_sweep_batch]
    return activities


def build_worker(client: Client, clients: WorkerClients, settings: Settings, *, task_queue: str | None = None) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(clients, settings),
        interceptors=[SettleInterceptor()],
        graceful_shutdown_timeout=timedelta(seconds=5),
    )


async def open_clients(client: Client, settings: Settings, stack: AsyncExitStack, *, rpc_url: str | None = None) -> WorkerClients:
    pool = await create_pool(settings.database_url, size_max=20)
    stack.push_async_callback(pool.close)
    ledger = LedgerStore(pool)
    stack.push_async_callback(ledger.close)
    chain = EvmChain.connect(rpc_url or settings.rpc_url, chain_id=settings.chain_id)
    relayer = Account.from_key(settings.relayer_private_key.get_secret_value())
    # Only this client may deliver webhooks: its transport checks every resolved address (SSRF).
    webhook_http = create_webhook_http_client(settings.webhooks)
    stack.push_async_callback(webhook_http.aclose)
    return WorkerClients(temporal=client, pool=pool, chain=chain, ledger=ledger, relayer=relayer, webhook_http=webhook_http)


async def ensure_chain_watcher(client: Client, settings: Settings, *, task_queue: str | None = None) -> None:
    """One watcher per chain; starting it again while it runs is a no-op."""
    tokens = [asset.token_address for asset in settings.assets().values() if asset.token_address]
    if not tokens:
        logger.warning("no tokens configured: the chain watcher is not started")
        return
    await client.start_workflow(
        ChainWatcherWorkflow.run,
        ChainWatcherInput(chain_id=settings.chain_id, token_addresses=tokens),
        id=watcher_workflow_id(settings.chain_id),
        task_queue=task_queue or settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes(kind="chain_watcher"),
    )


async def ensure_sweeper(client: Client, settings: Settings, *, task_queue: str | None = None) -> None:
    """One sweeper per chain; starting it again while it runs is a no-op."""
    if "DepositFactory" not in settings.contracts:
        logger.warning("no deposit factory configured: the sweeper is not started")
        return
    await client.start_workflow(
        SweeperWorkflow.run,
        SweeperInput(chain_id=settings.chain_id, deposit_factory=settings.contracts["DepositFactory"]),
        id=sweeper_workflow_id(settings.chain_id),
        task_queue=task_queue or settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes(kind="sweeper"),
    )


async def run(settings: Settings) -> None:
    runtime = None
    if settings.worker_metrics_port:
        runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{settings.worker_metrics_port}"))
        )
    if settings.worker_app_metrics_port:
        prometheus_client.start_http_server(settings.worker_app_metrics_port, addr="127.0.0.1")
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace, runtime=runtime)
    async with AsyncExitStack() as stack:
        clients = await open_clients(client, settings, stack)
        worker = build_worker(client, clients, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            await ensure_chain_watcher(client, settings)
            await ensure_sweeper(client, settings)
            await start_event_dispatcher(client, task_queue=settings.task_queue)
            logger.info("worker polling task_queue=%s namespace=%s", settings.task_queue, settings.temporal_namespace)
            await stop.wait()
            logger.info("worker stopping")


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(settings))
