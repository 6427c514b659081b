"""What the EVM adapter's calls share: a node call whose transport and web3 failures become the
project's `ChainUnavailable` (retryable), and hashes and addresses as lower-case 0x-hex."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import Web3Exception

from activities.errors import ChainUnavailable

T = TypeVar("T")
NODE_TIMEOUT_S = 10

# What a node call may raise that a retry can mend. OSError covers TimeoutError.
NODE_ERRORS = (OSError, aiohttp.ClientError, Web3Exception)


def connect(rpc_url: str) -> AsyncWeb3:
    return AsyncWeb3(AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": NODE_TIMEOUT_S}))


async def chain_call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except NODE_ERRORS as error:
        raise ChainUnavailable(str(error)) from error


def lower_hex(value: object) -> str:
    """A hash, address or topic from web3 (bytes, HexBytes or str) as lower-case 0x-hex."""
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()
