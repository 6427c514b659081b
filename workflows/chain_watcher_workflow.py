"""ChainWatcherWorkflow: one per chain, long-running. Its activity long-polls the chain (see
activities/chain_watcher.py); the workflow only keeps it running and continues as new before its
history grows large. The cursor lives in PostgreSQL, so a restart neither misses nor repeats a block."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.chain_watcher import ChainWatcherActivities, WatchChainInput, WatchChainResult

from workflows.retry_policies import WATCH_RETRY

PASSES_PER_RUN_MAX = 200


@dataclass
class ChainWatcherInput:
    chain_id: int
    token_addresses: list[str]
    activity_run_for_s: float = 60.0
    poll_interval_s: float = 0.2
    start_block: int | None = None


@dataclass
class ChainWatcherState:
    chain_id: int
    next_block: int | None = None
    payments_seen: int = 0
    reorgs: int = 0
    activity_runs: int = 0


def watcher_workflow_id(chain_id: int) -> str:
    return f"chain-watcher-{chain_id}"


@workflow.defn
class ChainWatcherWorkflow:
    def __init__(self) -> None:
        self._state: ChainWatcherState | None = None

    @workflow.run
    async def run(self, input: ChainWatcherInput) -> None:
        self._state = ChainWatcherState(chain_id=input.chain_id)
        for _ in range(PASSES_PER_RUN_MAX):
            result: WatchChainResult = await workflow.execute_activity_method(
                ChainWatcherActivities.watch_chain,
                WatchChainInput(
                    chain_id=input.chain_id,
                    token_addresses=input.token_addresses,
                    run_for_s=input.activity_run_for_s,
                    poll_interval_s=input.poll_interval_s,
                    start_block=input.start_block,
                ),
                start_to_close_timeout=timedelta(seconds=input.activity_run_for_s + 60),
                heartbeat_timeout=timedelta(seconds=15),
                retry_policy=WATCH_RETRY,
            )
            self._state.activity_runs += 1
            self._state.next_block = result.next_block
            self._state.payments_seen += result.payments_seen
            self._state.reorgs += result.reorgs
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(input)

    @workflow.query
    def state(self) -> ChainWatcherState | None:
        return self._state
