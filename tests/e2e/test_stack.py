"""The spine, end to end against the session's real stack."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request

import pytest

from cli.stack import ACCOUNT_ROLES, Stack
from workflows.hello_workflow import HelloInput, HelloResult, HelloWorkflow

REQUIRED_KEYS = {
    "api_url", "temporal_address", "temporal_namespace", "temporal_ui_url", "rpc_url", "chain_id",
    "database_url", "metrics_urls", "contracts", "accounts",
}


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_description_has_everything(stack):
    assert REQUIRED_KEYS <= stack.keys()
    assert stack["chain_id"] == 31337
    assert set(stack["contracts"]) >= {"TestUSDC", "TestUSDT"}
    assert set(stack["accounts"]) == set(ACCOUNT_ROLES)
    for account in stack["accounts"].values():
        assert account["private_key"].startswith("0x") and len(account["private_key"]) == 66


def test_settle_up_json_prints_the_description(stack_instance, stack):
    # The CLI against the session's running stack: reuses every process, prints one JSON object.
    pids_before = stack_instance.pids()
    env = {"SETTLE_STATE_DIR": str(stack_instance.state_dir), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "cli.main", "up", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert REQUIRED_KEYS <= printed.keys()
    assert printed["contracts"] == stack["contracts"]
    assert stack_instance.pids() == pids_before, "a second `up` must reuse what runs"


def test_web_ui_metrics_and_api_answer(stack):
    status, _ = _get(stack["temporal_ui_url"] + "/")
    assert status == 200
    status, body = _get(stack["api_url"] + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    for name, url in stack["metrics_urls"].items():
        status, body = _get(url)
        assert status == 200, name
        assert b"# TYPE" in body or b"# HELP" in body, name


async def test_hello_workflow_reads_chain_and_writes_row(stack, temporal_client, db_pool, unique_id):
    from web3 import Web3

    head_before = Web3(Web3.HTTPProvider(stack["rpc_url"])).eth.block_number
    workflow_id = f"hello-test-{unique_id}"
    result: HelloResult = await temporal_client.execute_workflow(
        HelloWorkflow.run, HelloInput(chain_id=stack["chain_id"]), id=workflow_id, task_queue=stack["task_queue"]
    )
    assert result.block_number >= head_before
    row = await db_pool.fetchrow("SELECT * FROM hello_runs WHERE workflow_id = $1", workflow_id)
    assert row is not None and row["block_number"] == result.block_number and row["block_hash"] == result.block_hash
    assert result.row_inserted is True


def test_demo_prints_the_story(stack_instance):
    env = {"SETTLE_STATE_DIR": str(stack_instance.state_dir), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "cli.main", "demo"], capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read the chain head from anvil" in result.stdout
    assert "wrote a row in PostgreSQL" in result.stdout
    # The payment story: created, paid on anvil, processing while confirming, settled, swept, told.
    for line in ("intent status: processing", "intent status: succeeded", "settled: fee 250000, net 24750000",
                 "holds 25000000 more base units of USDC", "verified webhook: payment_intent.succeeded"):
        assert line in result.stdout, line


async def test_web_ui_lists_the_demo_workflow_with_its_search_attributes(stack, temporal_client, unique_id):
    from urllib.parse import quote

    from workflows.search_attributes import search_attributes

    workflow_id = f"hello-ui-{unique_id}"
    await temporal_client.execute_workflow(
        HelloWorkflow.run,
        HelloInput(chain_id=stack["chain_id"]),
        id=workflow_id,
        task_queue=stack["task_queue"],
        search_attributes=search_attributes(kind="hello", status="started"),
    )
    # The Web UI's own HTTP API, which its pages render from.
    query = quote(f'WorkflowId="{workflow_id}" AND SettleKind="hello" AND SettleStatus="done"')
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        status, body = _get(f"{stack['temporal_ui_url']}/api/v1/namespaces/{stack['temporal_namespace']}/workflows?query={query}")
        executions = json.loads(body).get("executions", [])
        if executions or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)  # visibility is eventually consistent
    assert status == 200
    assert [e["execution"]["workflowId"] for e in executions] == [workflow_id]
    assert executions[0]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"


def test_demo_without_a_stack_says_so_clearly(tmp_path):
    env = {"SETTLE_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "cli.main", "demo"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "run `settle up` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_down_on_an_empty_state_stops_nothing(tmp_path):
    assert Stack(state_dir=tmp_path).down() == []
