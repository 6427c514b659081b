"""A worker killed (SIGKILL) while a webhook request is in flight: another worker sends it again
with the same webhook-id, and the receiver processes the event once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

from cli.processes import stop_pid
from cli.stack import PROJECT_ROOT
from domain.webhooks import DeliveryStatus
from tests.webhooks_receiver import Reply, WebhookReceiver, WebhookTestBed, fast_settings, webhook_worker

SETTINGS = dict(retry_delays_s=[1.0, 1.0, 1.0], attempt_heartbeat_timeout_s=1.5, read_timeout_s=30.0, request_timeout_s=30.0)


def _start_worker(stack_instance, task_queue: str, log_path) -> subprocess.Popen:
    env = stack_instance.service_env(stack_instance.load_state())
    env["SETTLE_TASK_QUEUE"] = task_queue
    env["SETTLE_ENV"] = "test"
    env["SETTLE_WEBHOOK_RETRY_DELAYS_S"] = json.dumps(SETTINGS["retry_delays_s"])
    for name in ("attempt_heartbeat_timeout_s", "read_timeout_s", "request_timeout_s"):
        env[f"SETTLE_WEBHOOK_{name.upper()}"] = str(SETTINGS[name])
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workflows.webhook_worker_main"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


async def test_worker_killed_mid_delivery_delivers_with_the_same_webhook_id(stack_instance, temporal_client, db_pool, unique_id, tmp_path):
    release = asyncio.Event()
    bed = WebhookTestBed(
        client=temporal_client,
        pool=db_pool,
        tenant_id=f"ten_whkill{unique_id}",
        route=f"test-{unique_id}",
        task_queue=f"test-webhook-kill-{unique_id}",
        settings=fast_settings(**SETTINGS),
    )
    await bed.add_tenant(bed.tenant_id)
    worker = _start_worker(stack_instance, bed.task_queue, tmp_path / "worker.log")
    try:
        async with WebhookReceiver() as receiver:
            created = await bed.create_endpoint(receiver.url("hook"))
            # The first request hangs: the worker dies while waiting for the answer.
            receiver.expect("hook", secrets=[created.secret], replies=[Reply(200, hold=release, hold_s=30)])
            await bed.start_dispatcher(heartbeat_timeout_s=2.0)
            event_id = await bed.insert_event()
            await receiver.wait_for(lambda: receiver.requests("hook"), timeout_s=30, what="the first request")
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            async with webhook_worker(temporal_client, db_pool, task_queue=bed.task_queue, settings=bed.settings):
                delivery = await bed.wait_delivery(f"whd_{event_id}_{created.endpoint.id}", timeout_s=40)
                await bed.stop_dispatcher()
            release.set()
            assert delivery.status is DeliveryStatus.DELIVERED
            requests = receiver.requests("hook")
            assert len(requests) == 2 and all(r.verified for r in requests)
            assert {r.webhook_id for r in requests} == {event_id}  # the receiver dedupes on it: processed once
            # The killed attempt never came back; the one that did is the only one logged.
            assert delivery.attempts_count == 1
    finally:
        release.set()
        await bed.stop_dispatcher()
        stop_pid(worker.pid, timeout_s=10)
