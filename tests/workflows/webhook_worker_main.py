"""A worker with only the webhook workflows and activities, on the task queue of
SETTLE_TASK_QUEUE: what the worker-kill test runs (and kills) as a subprocess. Configuration
comes from the environment like the real worker's (SETTLE_*, SETTLE_WEBHOOK_*)."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.webhook_transport import create_webhook_http_client
from activities.webhooks import webhook_activities
from db.pool import create_pool
from db.settings import Settings
from workflows.event_dispatch_workflow import WEBHOOK_WORKFLOWS


async def run() -> None:
    settings = Settings()
    webhook_settings = settings.webhooks
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    pool = await create_pool(settings.database_url)
    http_client = create_webhook_http_client(webhook_settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Worker(
            client,
            task_queue=settings.task_queue,
            workflows=WEBHOOK_WORKFLOWS,
            activities=webhook_activities(pool, http_client, settings=webhook_settings),
            graceful_shutdown_timeout=timedelta(seconds=2),
        ):
            print(f"webhook worker polling task_queue={settings.task_queue}", flush=True)
            await stop.wait()
    finally:
        await http_client.aclose()
        await pool.close()


if __name__ == "__main__":
    asyncio.run(run())
