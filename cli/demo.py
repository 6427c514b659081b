"""`settle demo`: the whole story against the running stack, step by step. Grows with each capability."""

from __future__ import annotations

import time

import asyncpg
from temporalio.client import Client

from cli.processes import StackError
from workflows.hello_workflow import HelloInput, HelloWorkflow
from workflows.search_attributes import search_attributes


def say(step: str) -> None:
    print(f"==> {step}", flush=True)


async def run_demo(description: dict) -> None:
    if not description.get("temporal_address"):
        raise StackError("the stack is not running: run `settle up` first")
    client = await Client.connect(description["temporal_address"], namespace=description["temporal_namespace"])
    workflow_id = f"hello-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 1_000_000:06d}"
    say(f"starting HelloWorkflow {workflow_id} on task queue {description['task_queue']}")
    handle = await client.start_workflow(
        HelloWorkflow.run,
        HelloInput(chain_id=description["chain_id"]),
        id=workflow_id,
        task_queue=description["task_queue"],
        search_attributes=search_attributes(kind="hello", status="started"),
    )
    result = await handle.result()
    say(f"an activity read the chain head from anvil ({description['rpc_url']}): block {result.block_number}, hash {result.block_hash}")
    connection = await asyncpg.connect(description["database_url"])
    try:
        row = await connection.fetchrow("SELECT * FROM hello_runs WHERE workflow_id = $1", workflow_id)
    finally:
        await connection.close()
    if row is None:
        raise StackError(f"no hello_runs row for {workflow_id}")
    say(f"an activity wrote a row in PostgreSQL: hello_runs(workflow_id={row['workflow_id']}, block_number={row['block_number']})")
    say(f"see it in the Temporal Web UI: {description['temporal_ui_url']}/namespaces/{description['temporal_namespace']}/workflows/{workflow_id}")
    say("demo finished")
