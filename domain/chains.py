"""Chains, pure: the key that names a chain everywhere outside its adapter (`evm:31337`, later
`tron:…`), and each family's address rules. Workflows carry a chain key, never a client; the
adapter for a key lives under activities/chains/<family>/."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ChainFamily(StrEnum):
    EVM = "evm"


class InvalidChainKey(ValueError):
    """Not `<family>:<id>` of a family Settle knows."""


@dataclass(frozen=True)
class ChainKey:
    family: ChainFamily
    reference: str  # the family's own id: an EVM chain id in decimal

    def __str__(self) -> str:
        return f"{self.family.value}:{self.reference}"

    @property
    def evm_chain_id(self) -> int:
        assert self.family is ChainFamily.EVM, self
        return int(self.reference)


CHAIN_KEY_LENGTH_MAX = 64


def evm_chain_key(chain_id: int) -> ChainKey:
    assert type(chain_id) is int and chain_id > 0, chain_id
    return ChainKey(ChainFamily.EVM, str(chain_id))


def parse_chain_key(value: str) -> ChainKey:
    if not isinstance(value, str) or len(value) > CHAIN_KEY_LENGTH_MAX or ":" not in value:
        raise InvalidChainKey(f"a chain key is <family>:<id>, e.g. evm:1; got {value!r:.80}")
    family, _, reference = value.partition(":")
    try:
        chain_family = ChainFamily(family)
    except ValueError:
        raise InvalidChainKey(f"unknown chain family {family!r:.20}; known: {', '.join(f.value for f in ChainFamily)}") from None
    if chain_family is ChainFamily.EVM and not (reference.isdigit() and reference.isascii() and 0 < int(reference) < 2**64):
        raise InvalidChainKey(f"an EVM chain key names its chain id in decimal, e.g. evm:1; got {value!r:.80}")
    return ChainKey(chain_family, reference)


ZERO_EVM_ADDRESS = "0x" + "0" * 40


class AddressProblem(StrEnum):
    FORMAT = "format"  # not 0x and 40 hex digits
    CHECKSUM = "checksum"  # mixed case that is not its EIP-55 checksum (or, where one is required, none)
    ZERO = "zero"  # the zero address: what is sent there is burnt


class InvalidAddress(ValueError):
    """Not an address of the chain's family, or one no money may go to. `problem` says which, so
    each caller words its own error; `checksummed` is the EIP-55 form when the hex was valid."""

    def __init__(self, problem: AddressProblem, message: str, *, checksummed: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.checksummed = checksummed


def parse_address(chain: ChainKey, value: object, *, checksum_required: bool = False, allow_zero: bool = False) -> str:
    """An address of `chain`'s family in its canonical form (EVM: EIP-55 checksum)."""
    assert chain.family is ChainFamily.EVM, chain
    return parse_evm_address(value, checksum_required=checksum_required, allow_zero=allow_zero)


def parse_evm_address(value: object, *, checksum_required: bool = False, allow_zero: bool = False) -> str:
    """The one rule for EVM addresses, in EIP-55 form. Lower-case hex (no checksum claimed) or the
    exact EIP-55 form pass: other casing is a typo the checksum caught. With `checksum_required`,
    only the EIP-55 form passes (payout addresses, where the checksum is what catches a mistyped
    address). The zero address is refused unless asked for."""
    from eth_utils import is_hex_address, to_checksum_address  # slow to import; only here

    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x") or not is_hex_address(value):
        raise InvalidAddress(AddressProblem.FORMAT, "an EVM address is 0x followed by 40 hex digits")
    checksummed = to_checksum_address(value)
    if value != checksummed and (checksum_required or value != value.lower()):
        raise InvalidAddress(AddressProblem.CHECKSUM, "the address is not in its EIP-55 checksum form", checksummed=checksummed)
    if not allow_zero and value.lower() == ZERO_EVM_ADDRESS:
        raise InvalidAddress(AddressProblem.ZERO, "the zero address cannot hold or receive money", checksummed=checksummed)
    return checksummed


def address_key(chain: ChainKey, address: str) -> str:
    """How an address is stored and compared (EVM: lower-case hex)."""
    assert chain.family is ChainFamily.EVM, chain
    return address.lower()
