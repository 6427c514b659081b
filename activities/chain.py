"""Chain reads for the hello workflow, through the chain adapter. One instance per worker."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from activities.chains import ChainAdapter


@dataclass(frozen=True)
class ReadChainHeadInput:
    chain_id: int


@dataclass(frozen=True)
class ChainHead:
    chain_id: int
    block_number: int
    block_hash: str


class ChainActivities:
    def __init__(self, chain: ChainAdapter, *, chain_id: int) -> None:
        self._chain = chain
        self._chain_id = chain_id

    @activity.defn
    async def read_chain_head(self, input: ReadChainHeadInput) -> ChainHead:
        assert input.chain_id == self._chain_id, f"this worker serves chain {self._chain_id}, not {input.chain_id}"
        block = await self._chain.block()
        return ChainHead(chain_id=input.chain_id, block_number=block.number, block_hash=block.hash)
