"""The EVM chain family's adapter (activities.chains.ChainAdapter) over web3.py."""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import AsyncWeb3

from activities.chains import BlockRef, ContractCall, TokenTransfer
from activities.chains.evm.rpc import chain_call, connect, lower_hex
from domain.chains import ChainKey, evm_chain_key

# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TRANSFER_FROM_SELECTOR = function_signature_to_4byte_selector("transferFrom(address,address,uint256)")
SWEEP_BATCH_SELECTOR = function_signature_to_4byte_selector("sweepBatch(bytes32[],address[])")


class EvmChain:
    """One EVM chain through one node. `w3` is public for the family's own transaction activities."""

    def __init__(self, w3: AsyncWeb3, *, chain_id: int) -> None:
        self.w3 = w3
        self.key: ChainKey = evm_chain_key(chain_id)
        self.chain_id = chain_id

    @classmethod
    def connect(cls, rpc_url: str, *, chain_id: int) -> EvmChain:
        return cls(connect(rpc_url), chain_id=chain_id)

    async def head_block_number(self) -> int:
        return await chain_call(self.w3.eth.block_number)

    async def block(self, number: int | None = None) -> BlockRef:
        block = await chain_call(self.w3.eth.get_block("latest" if number is None else number))
        return BlockRef(number=block["number"], hash=lower_hex(block["hash"]), parent_hash=lower_hex(block["parentHash"]))

    async def token_transfers(self, *, from_block: int, to_block: int, token_addresses: Sequence[str]) -> list[TokenTransfer]:
        logs = await chain_call(
            self.w3.eth.get_logs(
                {
                    "fromBlock": from_block,
                    "toBlock": to_block,
                    "address": [to_checksum_address(a) for a in token_addresses],
                    "topics": [TRANSFER_TOPIC],
                }
            )
        )
        return [
            TokenTransfer(
                tx_hash=lower_hex(log["transactionHash"]),
                log_index=log["logIndex"],
                token_address=log["address"].lower(),
                sender="0x" + lower_hex(log["topics"][1])[-40:],
                recipient="0x" + lower_hex(log["topics"][2])[-40:],
                amount_base_units=int.from_bytes(bytes(log["data"]), "big"),
                block_number=log["blockNumber"],
                block_hash=lower_hex(log["blockHash"]),
            )
            # An ERC-20 Transfer has both addresses indexed; an ERC-721 one (4 topics) is not a payment.
            for log in logs
            if len(log["topics"]) == 3
        ]

    def token_transfer_from_call(self, *, token_address: str, source: str, target: str, amount_base_units: int) -> ContractCall:
        assert amount_base_units > 0
        arguments = abi_encode(["address", "address", "uint256"], [to_checksum_address(source), to_checksum_address(target),
                                                                  amount_base_units])
        return ContractCall(to=to_checksum_address(token_address), data="0x" + (TRANSFER_FROM_SELECTOR + arguments).hex())

    def sweep_batch_call(self, *, factory_address: str, salts: Sequence[str], token_addresses: Sequence[str]) -> ContractCall:
        assert len(salts) == len(token_addresses) > 0
        arguments = abi_encode(
            ["bytes32[]", "address[]"],
            [[bytes.fromhex(salt.removeprefix("0x")) for salt in salts], [to_checksum_address(t) for t in token_addresses]],
        )
        return ContractCall(to=to_checksum_address(factory_address), data="0x" + (SWEEP_BATCH_SELECTOR + arguments).hex())
