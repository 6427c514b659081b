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
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker
from web3 import AsyncHTTPProvider, AsyncWeb3

from activities.chain import ChainActivities
from activities.hello import HelloActivities
from db.pool import create_pool
from db.settings import Settings, get_settings
from workflows.hello_workflow import HelloWorkflow

logger = logging.getLogger("settle.worker")

WORKFLOWS = [HelloWorkflow]


@dataclass
class WorkerClients:
    pool: asyncpg.Pool
    w3: AsyncWeb3


def activities_for(clients: WorkerClients, settings: Settings) -> list:
    chain = ChainActivities(clients.w3, chain_id=settings.chain_id)
    hello = HelloActivities(clients.pool)
    return [chain.read_chain_head, hello.record_hello_run]


def build_worker(client: Client, clients: WorkerClients, settings: Settings, *, task_queue: str | None = None) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(clients, settings),
        graceful_shutdown_timeout=timedelta(seconds=5),
    )


async def open_clients(settings: Settings, stack: AsyncExitStack) -> WorkerClients:
    pool = await create_pool(settings.database_url)
    stack.push_async_callback(pool.close)
    w3 = AsyncWeb3(AsyncHTTPProvider(settings.rpc_url, request_kwargs={"timeout": 10}))
    return WorkerClients(pool=pool, w3=w3)


async def run(settings: Settings) -> None:
    runtime = None
    if settings.worker_metrics_port:
        runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{settings.worker_metrics_port}"))
        )
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace, runtime=runtime)
    async with AsyncExitStack() as stack:
        clients = await open_clients(settings, stack)
        worker = build_worker(client, clients, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            logger.info("worker polling task_queue=%s namespace=%s", settings.task_queue, settings.temporal_namespace)
            await stop.wait()
            logger.info("worker stopping")


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(settings))
