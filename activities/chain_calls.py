"""What the chain activities share: a node call whose transport and web3 failures become the
project's `ChainUnavailable` (retryable), and hashes and addresses as lower-case 0x-hex."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from web3.exceptions import Web3Exception

from activities.errors import ChainUnavailable

T = TypeVar("T")


async def chain_call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except (OSError, aiohttp.ClientError, Web3Exception) as error:  # OSError covers TimeoutError
        raise ChainUnavailable(str(error)) from error


def lower_hex(value: object) -> str:
    """A hash, address or topic from web3 (bytes, HexBytes or str) as lower-case 0x-hex."""
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()
