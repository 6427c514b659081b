"""HelloWorkflow: the spine's end-to-end proof. Reads the chain head through an activity,
optionally waits (so a test can kill the worker mid-workflow), then writes a row in PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.chain import ChainActivities, ChainHead, ReadChainHeadInput
    from activities.hello import HelloActivities, RecordHelloRunInput

from workflows.retry_policies import NEVER_RETRIED
from workflows.search_attributes import SETTLE_STATUS


@dataclass
class HelloInput:
    chain_id: int
    pause_s: float = 0.0


@dataclass
class HelloResult:
    workflow_id: str
    chain_id: int
    block_number: int
    block_hash: str
    row_inserted: bool


RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=NEVER_RETRIED,
)


@workflow.defn
class HelloWorkflow:
    def __init__(self) -> None:
        self._status = "starting"
        self._head: ChainHead | None = None

    @workflow.run
    async def run(self, input: HelloInput) -> HelloResult:
        self._status = "reading_chain_head"
        head = await workflow.execute_activity_method(
            ChainActivities.read_chain_head,
            ReadChainHeadInput(chain_id=input.chain_id),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RETRY,
        )
        self._head = head
        if input.pause_s > 0:
            self._status = "pausing"
            await workflow.sleep(timedelta(seconds=input.pause_s))
        self._status = "recording"
        inserted = await workflow.execute_activity_method(
            HelloActivities.record_hello_run,
            RecordHelloRunInput(
                workflow_id=workflow.info().workflow_id,
                chain_id=head.chain_id,
                block_number=head.block_number,
                block_hash=head.block_hash,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RETRY,
        )
        self._status = "done"
        workflow.upsert_search_attributes([SETTLE_STATUS.value_set("done")])
        return HelloResult(
            workflow_id=workflow.info().workflow_id,
            chain_id=head.chain_id,
            block_number=head.block_number,
            block_hash=head.block_hash,
            row_inserted=inserted,
        )

    @workflow.query
    def status(self) -> str:
        return self._status
