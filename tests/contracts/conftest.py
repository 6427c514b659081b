"""The contract tests run on the session stack's anvil; each test module deploys its own tokens."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from web3 import Web3

from cli.stack import ACCOUNT_ROLES


@dataclass(frozen=True)
class AnvilNode:
    w3: Web3
    rpc_url: str
    private_keys: tuple[str, ...]
    addresses: tuple[str, ...]


@pytest.fixture(scope="module")
def anvil(stack) -> AnvilNode:
    w3 = Web3(Web3.HTTPProvider(stack["rpc_url"], request_kwargs={"timeout": 10}))
    accounts = [stack["accounts"][role] for role in ACCOUNT_ROLES]
    return AnvilNode(
        w3=w3,
        rpc_url=stack["rpc_url"],
        private_keys=tuple(account["private_key"] for account in accounts),
        addresses=tuple(account["address"] for account in accounts),
    )
