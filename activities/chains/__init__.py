"""The chain adapter seam: what business activities (intents, refunds, sweeps, later registrations
and payouts) ask of a chain, in provider-neutral terms. One adapter per chain family lives beside
this module (`evm/` now; Tron later fits beside it); business code never imports web3, eth_abi or
tronpy, and workflows carry only a chain key (domain.chains).

An adapter reads (head, blocks, token transfers by their `Transfer` events), builds the calls that
move tokens (a token's `transferFrom`, the deposit factory's batch sweep), and its transaction
activities sign and send through the signed-transaction outbox (activities.chain_tx)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from domain.chains import ChainKey


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str  # lower-case 0x-hex
    parent_hash: str


@dataclass(frozen=True)
class TokenTransfer:
    """One token `Transfer` event, as seen in a block. Addresses and hashes in lower case."""

    tx_hash: str
    log_index: int
    token_address: str
    sender: str
    recipient: str
    amount_base_units: int
    block_number: int
    block_hash: str


@dataclass(frozen=True)
class ContractCall:
    """A call for the outbox to sign and send: the contract and the encoded call data."""

    to: str
    data: str  # 0x-hex


class ChainAdapter(Protocol):
    """What a chain family provides. Every node failure is raised as activities.errors.ChainUnavailable."""

    key: ChainKey

    async def head_block_number(self) -> int: ...

    async def block(self, number: int | None = None) -> BlockRef:
        """The block at `number`, or the newest one."""
        ...

    async def token_transfers(self, *, from_block: int, to_block: int, token_addresses: Sequence[str]) -> list[TokenTransfer]:
        """Every `Transfer` of these tokens in the range, in chain order."""
        ...

    def token_transfer_from_call(self, *, token_address: str, source: str, target: str, amount_base_units: int) -> ContractCall: ...

    def sweep_batch_call(self, *, factory_address: str, salts: Sequence[str], token_addresses: Sequence[str]) -> ContractCall: ...
