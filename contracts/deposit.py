"""Per-payment-intent deposit addresses: CREATE2 clones of one forwarder, no private key each.

Each payment intent gets its own EVM deposit address, so a plain ERC-20 transfer from any wallet
or exchange is matched to the intent without a memo. The address is where ``DepositFactory``
deploys an EIP-1167 clone of its ``DepositForwarder`` implementation with the intent's salt;
it is computed here off-chain, from the factory and implementation addresses alone, and equals
the factory's ``predictAddress(salt)``. A sweep later deploys the clone and moves the tokens to
the treasury.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eth_utils import (
    is_address,
    is_checksum_address,
    is_checksum_formatted_address,
    keccak,
    to_canonical_address,
    to_checksum_address,
)

from contracts import load_artifact

if TYPE_CHECKING:
    from web3 import Web3

__all__ = [
    "DEPOSIT_SALT_DOMAIN",
    "INTENT_ID_BYTES_MAX",
    "clone_init_code",
    "deploy_deposit_factory",
    "deposit_salt",
    "predict_deposit_address",
]

# Versioned, so a future scheme (another forwarder, another derivation) cannot collide with v1.
DEPOSIT_SALT_DOMAIN = b"settle/deposit/v1/"
INTENT_ID_BYTES_MAX = 256
SALT_BYTES = 32

# EIP-1167 minimal proxy creation code around the 20-byte implementation address; the same bytes
# OpenZeppelin's Clones library deploys and hashes.
_CLONE_CODE_PREFIX = bytes.fromhex("3d602d80600a3d3981f3363d3d373d3d3d363d73")
_CLONE_CODE_SUFFIX = bytes.fromhex("5af43d82803e903d91602b57fd5bf3")
_CREATE2_PREFIX = b"\xff"


def deposit_salt(intent_id: str) -> bytes:
    """The 32-byte CREATE2 salt of the deposit address of payment intent ``intent_id``.

    keccak256 of ``DEPOSIT_SALT_DOMAIN`` followed by the intent id in UTF-8. Raises ValueError for
    an empty id or one longer than ``INTENT_ID_BYTES_MAX`` UTF-8 bytes.
    """
    if not isinstance(intent_id, str):
        raise TypeError(f"intent_id must be a str, got {type(intent_id).__name__}")
    encoded = intent_id.encode("utf-8")
    if not encoded:
        raise ValueError("intent_id must not be empty")
    if len(encoded) > INTENT_ID_BYTES_MAX:
        raise ValueError(f"intent_id is {len(encoded)} UTF-8 bytes, at most {INTENT_ID_BYTES_MAX} allowed")
    return keccak(DEPOSIT_SALT_DOMAIN + encoded)


def clone_init_code(implementation: str) -> bytes:
    """The EIP-1167 creation code of a minimal proxy delegating to ``implementation``."""
    return _CLONE_CODE_PREFIX + _canonical_address(implementation, name="implementation") + _CLONE_CODE_SUFFIX


def predict_deposit_address(*, factory: str, implementation: str, salt: bytes) -> str:
    """The checksummed deposit address for ``salt``: where ``factory`` deploys its clone.

    CREATE2: the last 20 bytes of keccak256(0xff ++ factory ++ salt ++ keccak256(init code)),
    the init code being ``clone_init_code(implementation)``. Needs no node.
    """
    if not isinstance(salt, bytes) or len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes, got {salt!r}")
    factory_bytes = _canonical_address(factory, name="factory")
    init_code_hash = keccak(clone_init_code(implementation))
    return to_checksum_address(keccak(_CREATE2_PREFIX + factory_bytes + salt + init_code_hash)[12:])


def deploy_deposit_factory(w3: Web3, *, deployer_private_key: str, treasury: str) -> dict[str, str]:
    """Deploy a DepositFactory sweeping to ``treasury``, owned by the deployer (the relayer).

    The factory deploys its DepositForwarder implementation in its constructor. Returns
    ``{"DepositFactory": factory address, "DepositForwarder": implementation address}``, both
    checksummed; raises contracts.deploy.DeploymentError if the deployment fails on chain.
    """
    # Imported here so that address prediction stays free of the signing stack.
    from eth_account import Account

    from contracts.deploy import DeploymentError, deploy_contract

    treasury_address = to_checksum_address(_canonical_address(treasury, name="treasury"))
    owner_address = Account.from_key(deployer_private_key).address
    factory_address = deploy_contract(
        w3,
        deployer_private_key=deployer_private_key,
        name="DepositFactory",
        constructor_args=(treasury_address, owner_address),
    )
    factory = w3.eth.contract(address=factory_address, abi=load_artifact("DepositFactory").abi)
    implementation_address = to_checksum_address(factory.functions.implementation().call())
    deployed_code = w3.eth.get_code(implementation_address)
    if deployed_code.to_0x_hex() != load_artifact("DepositForwarder").deployed_bytecode:
        raise DeploymentError(
            f"deploy DepositFactory: the implementation at {implementation_address} is not DepositForwarder"
        )
    return {"DepositFactory": factory_address, "DepositForwarder": implementation_address}


def _canonical_address(address: str, *, name: str) -> bytes:
    if not isinstance(address, str) or not address.startswith("0x") or not is_address(address):
        raise ValueError(f"{name} must be a 0x-prefixed 20-byte hex address, got {address!r}")
    # Mixed case claims an EIP-55 checksum; a wrong one is a typo, and a typo here loses funds.
    if is_checksum_formatted_address(address) and not is_checksum_address(address):
        raise ValueError(f"{name} has an invalid EIP-55 checksum: {address!r}")
    return to_canonical_address(address)


def intent_deposit_address(intent_id: str, *, factory: str, implementation: str) -> tuple[str, str]:
    """(checksummed deposit address, 0x-hex salt) of payment intent ``intent_id``."""
    salt = deposit_salt(intent_id)
    return predict_deposit_address(factory=factory, implementation=implementation, salt=salt), "0x" + salt.hex()
