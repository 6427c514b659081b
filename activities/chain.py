"""Chain reads and writes through web3.py. One instance per worker, built with its client."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from temporalio import activity
from web3 import AsyncWeb3
from web3.exceptions import Web3Exception

from activities.errors import ChainUnavailable


@dataclass(frozen=True)
class ReadChainHeadInput:
    chain_id: int


@dataclass(frozen=True)
class ChainHead:
    chain_id: int
    block_number: int
    block_hash: str


class ChainActivities:
    def __init__(self, w3: AsyncWeb3, *, chain_id: int) -> None:
        self._w3 = w3
        self._chain_id = chain_id

    @activity.defn
    async def read_chain_head(self, input: ReadChainHeadInput) -> ChainHead:
        assert input.chain_id == self._chain_id, f"this worker serves chain {self._chain_id}, not {input.chain_id}"
        try:
            block = await self._w3.eth.get_block("latest")
        except (OSError, aiohttp.ClientError, Web3Exception) as error:
            raise ChainUnavailable(f"chain {input.chain_id}: {error}") from error
        return ChainHead(chain_id=input.chain_id, block_number=block["number"], block_hash="0x" + bytes(block["hash"]).hex())
