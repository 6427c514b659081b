"""TestUSDC and TestUSDT deployed on a local anvil node behave like their mainnet namesakes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract

from contracts import load_artifact
from contracts.deploy import DeploymentError, deploy_contract, deploy_test_tokens

if TYPE_CHECKING:
    from tests.contracts.conftest import AnvilNode

MINTED_BASE_UNITS = 1_000 * 10**6  # 1,000 tokens of 6 decimals
DEADLINE_MARGIN_S = 3_600
CALL_GAS = 500_000

# Account roles, by index into the anvil dev accounts: index 0 deploys and owns the tokens.
DEPLOYER, HOLDER, SPENDER, OTHER_HOLDER, RECIPIENT, STRANGER = range(6)


def selector(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


def abi_error_selector(contract: Contract, error_name: str) -> str:
    (entry,) = [item for item in contract.abi if item["type"] == "error" and item["name"] == error_name]
    types = ",".join(parameter["type"] for parameter in entry["inputs"])
    return selector(f"{error_name}({types})")


def word(value: int | str) -> str:
    """One ABI-encoded 32-byte word, as hex without prefix."""
    if isinstance(value, str):
        value = int(value, 16)
    return f"{value:064x}"


def raw_eth_call(w3: Web3, *, sender: str, call: Any) -> dict[str, Any]:
    """The node's own JSON-RPC answer to eth_call, bypassing web3's result decoding."""
    transaction = {"from": sender, "to": call.address, "data": call._encode_transaction_data()}
    return w3.provider.make_request("eth_call", [transaction, "latest"])


def revert_data(w3: Web3, *, sender: str, call: Any) -> str:
    response = raw_eth_call(w3, sender=sender, call=call)
    assert "error" in response, f"expected a revert, got {response}"
    return response["error"]["data"]


def send(w3: Web3, *, private_key: str, call: Any) -> Any:
    account = Account.from_key(private_key)
    block = w3.eth.get_block("latest")
    transaction = call.build_transaction(
        {
            "from": account.address,
            "chainId": w3.eth.chain_id,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "gas": CALL_GAS,
            "maxFeePerGas": 2 * block["baseFeePerGas"] + 1,
            "maxPriorityFeePerGas": 1,
        }
    )
    signed = account.sign_transaction(transaction)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), timeout=30)
    assert receipt["status"] == 1, receipt
    return receipt


@pytest.fixture(scope="module")
def tokens(anvil: AnvilNode) -> dict[str, Contract]:
    addresses = deploy_test_tokens(
        anvil.w3,
        deployer_private_key=anvil.private_keys[DEPLOYER],
        mint_to=[anvil.addresses[HOLDER], anvil.addresses[OTHER_HOLDER]],
        mint_amount_base_units=MINTED_BASE_UNITS,
    )
    assert set(addresses) == {"TestUSDC", "TestUSDT"}
    return {name: anvil.w3.eth.contract(address=address, abi=load_artifact(name).abi) for name, address in addresses.items()}


def test_dev_keys_match_the_node_accounts(anvil: AnvilNode) -> None:
    assert list(anvil.addresses) == anvil.w3.eth.accounts[: len(anvil.addresses)]


def test_tokens_have_the_mainnet_shape(tokens: dict[str, Contract]) -> None:
    usdc, usdt = tokens["TestUSDC"], tokens["TestUSDT"]

    assert usdc.functions.decimals().call() == 6
    assert usdc.functions.symbol().call() == "USDC"
    assert usdc.functions.name().call() == "Test USD Coin"
    assert usdt.functions.decimals().call() == 6
    assert usdt.functions.symbol().call() == "USDT"


def test_deploy_test_tokens_mints_to_every_recipient_and_the_deployer_owns(anvil: AnvilNode) -> None:
    recipients = [anvil.addresses[RECIPIENT].lower(), anvil.addresses[STRANGER]]

    addresses = deploy_test_tokens(
        anvil.w3, deployer_private_key=anvil.private_keys[DEPLOYER], mint_to=recipients, mint_amount_base_units=123
    )

    assert list(addresses) == ["TestUSDC", "TestUSDT"]
    for name, address in addresses.items():
        token = anvil.w3.eth.contract(address=address, abi=load_artifact(name).abi)
        assert address == Web3.to_checksum_address(address)
        assert token.functions.owner().call() == anvil.addresses[DEPLOYER]
        assert token.functions.totalSupply().call() == 2 * 123
        assert token.functions.balanceOf(anvil.addresses[RECIPIENT]).call() == 123
        assert token.functions.balanceOf(anvil.addresses[STRANGER]).call() == 123
        assert token.functions.balanceOf(anvil.addresses[DEPLOYER]).call() == 0


@pytest.mark.parametrize("name", ["TestUSDC", "TestUSDT"])
def test_owner_mints_and_others_cannot(anvil: AnvilNode, tokens: dict[str, Contract], name: str) -> None:
    token = tokens[name]
    recipient = anvil.addresses[STRANGER]
    before = token.functions.balanceOf(recipient).call()

    send(anvil.w3, private_key=anvil.private_keys[DEPLOYER], call=token.functions.mint(recipient, 7))

    assert token.functions.balanceOf(recipient).call() == before + 7
    data = revert_data(anvil.w3, sender=anvil.addresses[STRANGER], call=token.functions.mint(recipient, 1))
    assert data == selector("OwnableUnauthorizedAccount(address)") + word(anvil.addresses[STRANGER])


def test_usdc_transfer_returns_true_and_moves_balances(anvil: AnvilNode, tokens: dict[str, Contract]) -> None:
    usdc = tokens["TestUSDC"]
    source, target = anvil.addresses[HOLDER], anvil.addresses[RECIPIENT]
    source_before, target_before = usdc.functions.balanceOf(source).call(), usdc.functions.balanceOf(target).call()

    assert raw_eth_call(anvil.w3, sender=source, call=usdc.functions.transfer(target, 250))["result"] == "0x" + word(1)
    send(anvil.w3, private_key=anvil.private_keys[HOLDER], call=usdc.functions.transfer(target, 250))

    assert usdc.functions.balanceOf(source).call() == source_before - 250
    assert usdc.functions.balanceOf(target).call() == target_before + 250


def sign_permit(
    w3: Web3, token: Contract, *, signer_private_key: str, owner: str, spender: str, value: int, deadline: int
) -> tuple[int, bytes, bytes]:
    # The domain comes from the token itself (ERC-5267), as a production client should read it.
    _fields, name, version, chain_id, verifying_contract, _salt, _extensions = token.functions.eip712Domain().call()
    domain = {"name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying_contract}
    types = {
        "Permit": [
            {"name": "owner", "type": "address"},
            {"name": "spender", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "nonce", "type": "uint256"},
            {"name": "deadline", "type": "uint256"},
        ]
    }
    message = {
        "owner": owner,
        "spender": spender,
        "value": value,
        "nonce": token.functions.nonces(owner).call(),
        "deadline": deadline,
    }
    signed = Account.sign_typed_data(signer_private_key, domain, types, message)
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def latest_timestamp(w3: Web3) -> int:
    return w3.eth.get_block("latest")["timestamp"]


def test_usdc_permit_domain_is_the_expected_one(anvil: AnvilNode, tokens: dict[str, Contract]) -> None:
    usdc = tokens["TestUSDC"]

    _fields, name, version, chain_id, verifying_contract, _salt, _extensions = usdc.functions.eip712Domain().call()

    assert (name, version, chain_id, verifying_contract) == ("Test USD Coin", "1", 31337, usdc.address)


def test_usdc_permit_sets_allowance_then_transfer_from_moves_funds(
    anvil: AnvilNode, tokens: dict[str, Contract]
) -> None:
    w3, usdc = anvil.w3, tokens["TestUSDC"]
    owner, spender, target = anvil.addresses[HOLDER], anvil.addresses[SPENDER], anvil.addresses[RECIPIENT]
    value = 40 * 10**6
    nonce_before = usdc.functions.nonces(owner).call()
    deadline = latest_timestamp(w3) + DEADLINE_MARGIN_S
    v, r, s = sign_permit(
        w3, usdc, signer_private_key=anvil.private_keys[HOLDER], owner=owner, spender=spender, value=value, deadline=deadline
    )

    # The spender relays the owner's signature: the owner never sends a transaction.
    receipt = send(w3, private_key=anvil.private_keys[SPENDER], call=usdc.functions.permit(owner, spender, value, deadline, v, r, s))

    (approval,) = usdc.events.Approval().process_receipt(receipt)
    assert approval["args"] == {"owner": owner, "spender": spender, "value": value}
    assert usdc.functions.allowance(owner, spender).call() == value
    assert usdc.functions.nonces(owner).call() == nonce_before + 1

    owner_before, target_before = usdc.functions.balanceOf(owner).call(), usdc.functions.balanceOf(target).call()
    send(w3, private_key=anvil.private_keys[SPENDER], call=usdc.functions.transferFrom(owner, target, value))

    assert usdc.functions.balanceOf(owner).call() == owner_before - value
    assert usdc.functions.balanceOf(target).call() == target_before + value
    assert usdc.functions.allowance(owner, spender).call() == 0


def test_usdc_permit_signed_by_someone_else_reverts(anvil: AnvilNode, tokens: dict[str, Contract]) -> None:
    w3, usdc = anvil.w3, tokens["TestUSDC"]
    owner, spender, impostor = anvil.addresses[HOLDER], anvil.addresses[SPENDER], anvil.addresses[STRANGER]
    deadline = latest_timestamp(w3) + DEADLINE_MARGIN_S
    v, r, s = sign_permit(
        w3, usdc, signer_private_key=anvil.private_keys[STRANGER], owner=owner, spender=spender, value=1, deadline=deadline
    )

    data = revert_data(w3, sender=spender, call=usdc.functions.permit(owner, spender, 1, deadline, v, r, s))

    assert data == selector("ERC2612InvalidSigner(address,address)") + word(impostor) + word(owner)


def test_usdc_permit_past_its_deadline_reverts(anvil: AnvilNode, tokens: dict[str, Contract]) -> None:
    w3, usdc = anvil.w3, tokens["TestUSDC"]
    owner, spender = anvil.addresses[HOLDER], anvil.addresses[SPENDER]
    deadline = latest_timestamp(w3) - 1
    v, r, s = sign_permit(
        w3, usdc, signer_private_key=anvil.private_keys[HOLDER], owner=owner, spender=spender, value=1, deadline=deadline
    )

    data = revert_data(w3, sender=spender, call=usdc.functions.permit(owner, spender, 1, deadline, v, r, s))

    assert data == selector("ERC2612ExpiredSignature(uint256)") + word(deadline)


def test_usdc_insufficient_balance_reverts_with_the_custom_error(anvil: AnvilNode, tokens: dict[str, Contract]) -> None:
    usdc = tokens["TestUSDC"]
    source = anvil.addresses[STRANGER]
    balance = usdc.functions.balanceOf(source).call()

    data = revert_data(anvil.w3, sender=source, call=usdc.functions.transfer(anvil.addresses[RECIPIENT], balance + 1))

    assert data == selector("ERC20InsufficientBalance(address,uint256,uint256)") + word(source) + word(balance) + word(balance + 1)


def test_usdt_transfer_returns_no_data_moves_balances_and_emits_transfer(
    anvil: AnvilNode, tokens: dict[str, Contract]
) -> None:
    w3, usdt = anvil.w3, tokens["TestUSDT"]
    source, target = anvil.addresses[OTHER_HOLDER], anvil.addresses[RECIPIENT]
    source_before, target_before = usdt.functions.balanceOf(source).call(), usdt.functions.balanceOf(target).call()

    response = raw_eth_call(w3, sender=source, call=usdt.functions.transfer(target, 125))
    assert response.get("error") is None
    assert response["result"] == "0x"
    assert w3.eth.call({"from": source, "to": usdt.address, "data": usdt.functions.transfer(target, 125)._encode_transaction_data()}) == b""

    receipt = send(w3, private_key=anvil.private_keys[OTHER_HOLDER], call=usdt.functions.transfer(target, 125))

    assert usdt.functions.balanceOf(source).call() == source_before - 125
    assert usdt.functions.balanceOf(target).call() == target_before + 125
    (transfer,) = usdt.events.Transfer().process_receipt(receipt)
    assert transfer["args"] == {"from": source, "to": target, "value": 125}
    # Both addresses are indexed, so watchers can filter transfers by party.
    (log,) = receipt["logs"]
    assert log["topics"][0] == keccak(text="Transfer(address,address,uint256)")
    assert log["topics"][1:] == [bytes.fromhex(word(source)), bytes.fromhex(word(target))]


def test_usdt_approve_and_transfer_from_return_no_data(anvil: AnvilNode, tokens: dict[str, Contract]) -> None:
    w3, usdt = anvil.w3, tokens["TestUSDT"]
    owner, spender, target = anvil.addresses[OTHER_HOLDER], anvil.addresses[SPENDER], anvil.addresses[RECIPIENT]

    assert raw_eth_call(w3, sender=owner, call=usdt.functions.approve(spender, 60))["result"] == "0x"
    receipt = send(w3, private_key=anvil.private_keys[OTHER_HOLDER], call=usdt.functions.approve(spender, 60))
    (approval,) = usdt.events.Approval().process_receipt(receipt)
    assert approval["args"] == {"owner": owner, "spender": spender, "value": 60}
    assert usdt.functions.allowance(owner, spender).call() == 60

    owner_before, target_before = usdt.functions.balanceOf(owner).call(), usdt.functions.balanceOf(target).call()
    assert raw_eth_call(w3, sender=spender, call=usdt.functions.transferFrom(owner, target, 50))["result"] == "0x"
    send(w3, private_key=anvil.private_keys[SPENDER], call=usdt.functions.transferFrom(owner, target, 50))

    assert usdt.functions.balanceOf(owner).call() == owner_before - 50
    assert usdt.functions.balanceOf(target).call() == target_before + 50
    assert usdt.functions.allowance(owner, spender).call() == 10
    data = revert_data(w3, sender=spender, call=usdt.functions.transferFrom(owner, target, 11))
    assert data == selector("ERC20InsufficientAllowance(address,uint256,uint256)") + word(spender) + word(10) + word(11)


def test_usdt_unlimited_allowance_is_not_spent(anvil: AnvilNode, tokens: dict[str, Contract]) -> None:
    w3, usdt = anvil.w3, tokens["TestUSDT"]
    owner, spender, target = anvil.addresses[OTHER_HOLDER], anvil.addresses[STRANGER], anvil.addresses[RECIPIENT]
    unlimited = 2**256 - 1
    send(w3, private_key=anvil.private_keys[OTHER_HOLDER], call=usdt.functions.approve(spender, unlimited))

    send(w3, private_key=anvil.private_keys[STRANGER], call=usdt.functions.transferFrom(owner, target, 3))

    assert usdt.functions.allowance(owner, spender).call() == unlimited


def test_usdt_insufficient_balance_reverts_with_the_custom_error(anvil: AnvilNode, tokens: dict[str, Contract]) -> None:
    w3, usdt = anvil.w3, tokens["TestUSDT"]
    source, target = anvil.addresses[OTHER_HOLDER], anvil.addresses[RECIPIENT]
    balance = usdt.functions.balanceOf(source).call()

    data = revert_data(w3, sender=source, call=usdt.functions.transfer(target, balance + 1))

    expected_selector = selector("ERC20InsufficientBalance(address,uint256,uint256)")
    assert abi_error_selector(usdt, "ERC20InsufficientBalance") == expected_selector
    assert data[:10] == expected_selector
    assert data == expected_selector + word(source) + word(balance) + word(balance + 1)


def test_usdt_transfer_to_the_zero_address_reverts(anvil: AnvilNode, tokens: dict[str, Contract]) -> None:
    usdt = tokens["TestUSDT"]
    zero_address = "0x" + "00" * 20

    data = revert_data(anvil.w3, sender=anvil.addresses[OTHER_HOLDER], call=usdt.functions.transfer(zero_address, 1))

    assert data == selector("ERC20InvalidReceiver(address)") + word(0)


def test_deploy_contract_rejects_an_unknown_name_before_sending(anvil: AnvilNode) -> None:
    deployer = anvil.addresses[DEPLOYER]
    nonce_before = anvil.w3.eth.get_transaction_count(deployer)

    with pytest.raises(LookupError, match="TestUSDC"):
        deploy_contract(anvil.w3, deployer_private_key=anvil.private_keys[DEPLOYER], name="TestDAI")

    assert anvil.w3.eth.get_transaction_count(deployer) == nonce_before


def test_deploy_contract_returns_a_checksummed_address_with_code(anvil: AnvilNode) -> None:
    address = deploy_contract(anvil.w3, deployer_private_key=anvil.private_keys[DEPLOYER], name="TestUSDT")

    assert address == Web3.to_checksum_address(address)
    assert anvil.w3.eth.get_code(address).to_0x_hex() == load_artifact("TestUSDT").deployed_bytecode


@pytest.mark.parametrize("amount", [1.5, 1e6, "100", True])
def test_deploy_test_tokens_refuses_non_integer_amounts(anvil: AnvilNode, amount: object) -> None:
    with pytest.raises(TypeError, match="mint_amount_base_units"):
        deploy_test_tokens(
            anvil.w3,
            deployer_private_key=anvil.private_keys[DEPLOYER],
            mint_to=[anvil.addresses[HOLDER]],
            mint_amount_base_units=amount,  # type: ignore[arg-type]
        )


def test_deployment_error_is_a_runtime_error() -> None:
    assert issubclass(DeploymentError, RuntimeError)
