import pytest

from domain.chains import (
    AddressProblem,
    ChainFamily,
    InvalidAddress,
    InvalidChainKey,
    address_key,
    evm_chain_key,
    parse_address,
    parse_chain_key,
    parse_evm_address,
)


def test_chain_keys_round_trip():
    key = evm_chain_key(31337)
    assert str(key) == "evm:31337" and key.family is ChainFamily.EVM and key.evm_chain_id == 31337
    assert parse_chain_key("evm:31337") == key


@pytest.mark.parametrize("value", ["", "evm", "evm:", "evm:0", "evm:-1", "evm:1x", "evm:١", "btc:1", "tron", "evm:" + "9" * 70, None])
def test_bad_chain_keys_are_refused(value):
    with pytest.raises(InvalidChainKey):
        parse_chain_key(value)


def test_evm_addresses_are_checksummed_and_compared_lower_case():
    chain = evm_chain_key(1)
    lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
    assert parse_address(chain, lower) == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    assert address_key(chain, parse_address(chain, lower)) == lower


@pytest.mark.parametrize(
    "value, problem",
    [
        ("0x5AAEB6053f3e94c9b9a09f33669435e7ef1beaed", AddressProblem.CHECKSUM),
        ("0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED", AddressProblem.CHECKSUM),
        ("0x" + "0" * 40, AddressProblem.ZERO),
        ("0x123", AddressProblem.FORMAT),
        ("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", AddressProblem.FORMAT),
        ("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed00", AddressProblem.FORMAT),
        (42, AddressProblem.FORMAT),
        (None, AddressProblem.FORMAT),
    ],
)
def test_bad_evm_addresses_are_refused(value, problem):
    with pytest.raises(InvalidAddress) as raised:
        parse_address(evm_chain_key(1), value)
    assert raised.value.problem is problem


def test_a_checksum_can_be_required():
    lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
    with pytest.raises(InvalidAddress) as raised:
        parse_evm_address(lower, checksum_required=True)
    assert raised.value.checksummed == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    assert parse_evm_address(raised.value.checksummed, checksum_required=True) == raised.value.checksummed


def test_the_zero_address_only_when_asked_for():
    assert parse_address(evm_chain_key(1), "0x" + "0" * 40, allow_zero=True) == "0x" + "0" * 40
