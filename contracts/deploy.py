"""Deploy the compiled contracts with a local private key: for local chains, tests and testnets.

Every transaction is built with explicit gas, nonce, chain id and fees, signed locally with
eth-account and sent raw, so this works against any JSON-RPC node, not only ones that hold keys.
Production sends go through the activities' signer, not through this module.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from contracts import load_artifact

__all__ = ["DeploymentError", "approve_spender", "deploy_contract", "deploy_test_tokens"]

TEST_TOKEN_NAMES = ("TestUSDC", "TestUSDT")

# An estimate can fall short when state changes between estimate and inclusion; the surplus is
# refunded, so a margin costs nothing but protects against out-of-gas reverts.
_GAS_MARGIN_NUMERATOR = 6
_GAS_MARGIN_DENOMINATOR = 5
_RECEIPT_TIMEOUT_S = 120.0
_RECEIPT_POLL_INTERVAL_S = 0.1
_MINT_RECIPIENTS_MAX = 100


class DeploymentError(RuntimeError):
    """A deployment or setup transaction failed on chain."""


def deploy_contract(
    w3: Web3,
    *,
    deployer_private_key: str,
    name: str,
    constructor_args: tuple = (),
) -> str:
    """Deploy the artifact ``name`` and return the checksummed address of the new contract.

    Waits for the receipt and raises DeploymentError unless the transaction succeeded and code
    exists at the new address.
    """
    artifact = load_artifact(name)
    deployer: LocalAccount = Account.from_key(deployer_private_key)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = _transact(
        w3,
        sender=deployer,
        call=factory.constructor(*constructor_args),
        description=f"deploy {name}",
    )
    address = receipt["contractAddress"]
    if address is None:
        raise DeploymentError(f"deploy {name}: receipt has no contract address")
    if len(w3.eth.get_code(address)) == 0:
        raise DeploymentError(f"deploy {name}: no code at {address} after a successful receipt")
    return Web3.to_checksum_address(address)


def deploy_test_tokens(
    w3: Web3,
    *,
    deployer_private_key: str,
    mint_to: list[str],
    mint_amount_base_units: int,
) -> dict[str, str]:
    """Deploy TestUSDC and TestUSDT and mint ``mint_amount_base_units`` of each to every address.

    Returns ``{"TestUSDC": address, "TestUSDT": address}``. The deployer owns both tokens.
    """
    if not isinstance(mint_amount_base_units, int) or isinstance(mint_amount_base_units, bool):
        raise TypeError(
            f"mint_amount_base_units must be an int, got {type(mint_amount_base_units).__name__}"
        )
    if mint_amount_base_units < 0:
        raise ValueError(f"mint_amount_base_units must not be negative, got {mint_amount_base_units}")
    if len(mint_to) > _MINT_RECIPIENTS_MAX:
        raise ValueError(f"at most {_MINT_RECIPIENTS_MAX} mint recipients, got {len(mint_to)}")
    recipients = [Web3.to_checksum_address(address) for address in mint_to]

    deployer: LocalAccount = Account.from_key(deployer_private_key)
    addresses: dict[str, str] = {}
    for name in TEST_TOKEN_NAMES:
        address = deploy_contract(w3, deployer_private_key=deployer_private_key, name=name)
        token = w3.eth.contract(address=address, abi=load_artifact(name).abi)
        for recipient in recipients:
            _transact(
                w3,
                sender=deployer,
                call=token.functions.mint(recipient, mint_amount_base_units),
                description=f"mint {mint_amount_base_units} {name} to {recipient}",
            )
        addresses[name] = address
    return addresses


def approve_spender(w3: Web3, *, owner_private_key: str, token_name: str, token_address: str, spender: str, amount_base_units: int) -> None:
    """``owner`` lets ``spender`` move up to ``amount_base_units`` of the token with ``transferFrom``
    (the treasury lets the relayer pay refunds). Sends nothing when the allowance is already that
    high. Works for TestUSDT too, whose ``approve`` returns nothing, as mainnet USDT's."""
    if not isinstance(amount_base_units, int) or isinstance(amount_base_units, bool) or amount_base_units < 0:
        raise ValueError(f"amount_base_units must be a non-negative int, got {amount_base_units!r}")
    owner: LocalAccount = Account.from_key(owner_private_key)
    token = w3.eth.contract(address=Web3.to_checksum_address(token_address), abi=load_artifact(token_name).abi)
    spender = Web3.to_checksum_address(spender)
    if token.functions.allowance(owner.address, spender).call() >= amount_base_units:
        return
    _transact(
        w3,
        sender=owner,
        call=token.functions.approve(spender, amount_base_units),
        description=f"approve {spender} for {amount_base_units} {token_name} of {owner.address}",
    )


def _transact(w3: Web3, *, sender: LocalAccount, call: Any, description: str) -> Any:
    """Build, sign, send and confirm one transaction; ``call`` is a constructor or function call."""
    gas_estimate = call.estimate_gas({"from": sender.address})
    transaction = call.build_transaction(
        {
            "from": sender.address,
            "chainId": w3.eth.chain_id,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "gas": gas_estimate * _GAS_MARGIN_NUMERATOR // _GAS_MARGIN_DENOMINATOR,
            "value": 0,
            **_fee_fields(w3),
        }
    )
    signed = sender.sign_transaction(transaction)
    transaction_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(
        transaction_hash, timeout=_RECEIPT_TIMEOUT_S, poll_latency=_RECEIPT_POLL_INTERVAL_S
    )
    if receipt["status"] != 1:
        raise DeploymentError(
            f"{description}: transaction {transaction_hash.to_0x_hex()} reverted"
            f" (status {receipt['status']}, gas used {receipt['gasUsed']} of {transaction['gas']})"
        )
    return receipt


def _fee_fields(w3: Web3) -> dict[str, int]:
    """EIP-1559 fees when the chain has a base fee, else a legacy gas price."""
    latest_block = w3.eth.get_block("latest")
    base_fee_per_gas = latest_block.get("baseFeePerGas")
    if base_fee_per_gas is None:
        return {"gasPrice": w3.eth.gas_price}
    priority_fee_per_gas = w3.eth.max_priority_fee
    # Twice the base fee survives six consecutive full blocks of base-fee increases.
    return {
        "maxFeePerGas": 2 * base_fee_per_gas + priority_fee_per_gas,
        "maxPriorityFeePerGas": priority_fee_per_gas,
    }
