"""The spine's database activity: one row per HelloWorkflow, idempotent by workflow id."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from temporalio import activity

from db.hello import insert_hello_run


@dataclass(frozen=True)
class RecordHelloRunInput:
    workflow_id: str
    chain_id: int
    block_number: int
    block_hash: str


class HelloActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def record_hello_run(self, input: RecordHelloRunInput) -> bool:
        inserted = await insert_hello_run(
            self._pool,
            workflow_id=input.workflow_id,
            chain_id=input.chain_id,
            block_number=input.block_number,
            block_hash=input.block_hash,
        )
        activity.logger.info("hello_runs row for %s %s", input.workflow_id, "inserted" if inserted else "already there")
        return inserted
