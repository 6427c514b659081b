"""Kill the worker mid-workflow (SIGKILL, no goodbye); a new worker finishes it, once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from cli.processes import stop_pid
from cli.stack import PROJECT_ROOT
from workflows.hello_workflow import HelloInput, HelloWorkflow


def _start_worker(stack_instance, task_queue: str, log_path) -> subprocess.Popen:
    state = stack_instance.load_state()
    env = stack_instance.service_env(state)
    env["SETTLE_TASK_QUEUE"] = task_queue
    env.pop("SETTLE_WORKER_METRICS_PORT", None)
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log, start_new_session=True)


async def _wait_for_status(handle, wanted: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await handle.query(HelloWorkflow.status) == wanted:
                return
        except Exception:  # noqa: BLE001 - the query needs a live worker; keep asking
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"workflow never reached {wanted!r}")


async def test_killed_worker_mid_workflow_completes_on_a_new_worker(stack_instance, stack, temporal_client, db_pool, unique_id, tmp_path):
    task_queue = f"test-restart-{unique_id}"
    workflow_id = f"hello-restart-{unique_id}"
    first = _start_worker(stack_instance, task_queue, tmp_path / "worker-1.log")
    second = None
    try:
        handle = await temporal_client.start_workflow(
            HelloWorkflow.run, HelloInput(chain_id=stack["chain_id"], pause_s=4), id=workflow_id, task_queue=task_queue
        )
        await _wait_for_status(handle, "pausing", timeout_s=30)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        row = await db_pool.fetchrow("SELECT 1 FROM hello_runs WHERE workflow_id = $1", workflow_id)
        assert row is None, "the row must not exist before the pause ends"
        second = _start_worker(stack_instance, task_queue, tmp_path / "worker-2.log")
        result = await asyncio.wait_for(handle.result(), timeout=60)
        assert result.workflow_id == workflow_id
        count = await db_pool.fetchval("SELECT count(*) FROM hello_runs WHERE workflow_id = $1", workflow_id)
        assert count == 1
    finally:
        for process in (first, second):
            if process is not None:
                stop_pid(process.pid, timeout_s=10)
