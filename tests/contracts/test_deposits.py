"""Per-intent deposit addresses: CREATE2 clones predicted off-chain, funded, then swept to the treasury."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from contracts import load_artifact
from contracts.deploy import deploy_test_tokens
from contracts.deposit import (
    DEPOSIT_SALT_DOMAIN,
    INTENT_ID_BYTES_MAX,
    clone_init_code,
    deploy_deposit_factory,
    deposit_salt,
    predict_deposit_address,
)

if TYPE_CHECKING:
    from tests.contracts.conftest import AnvilNode

# Account roles, by index into the anvil dev accounts (cli.stack.ACCOUNT_ROLES).
RELAYER, TREASURY, CUSTOMER, SWEEPER, NEW_TREASURY, STRANGER = range(6)

MINTED_BASE_UNITS = 1_000_000 * 10**6
SWEEP_BATCH_SIZE_MAX = 100
BATCH_GAS_SWEEPS = 10
# Generous bounds that still catch a regression such as a full contract deployed per intent
# (~10x the clone) or an accidental unbounded loop: a first sweep deploys a 45-byte clone,
# initialises one slot and makes one token transfer.
FIRST_SWEEP_GAS_MAX = 150_000
BATCH_OF_FIRST_SWEEPS_GAS_MAX = 1_100_000
TRANSACTION_GAS_MARGIN_PERCENT = 20
RECEIPT_TIMEOUT_S = 30

# EIP-1167 runtime code around the implementation address.
CLONE_RUNTIME_PREFIX = "0x363d3d373d3d3d363d73"
CLONE_RUNTIME_SUFFIX = "5af43d82803e903d91602b57fd5bf3"


def selector(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


def word(value: int | str) -> str:
    """One ABI-encoded 32-byte word, as hex without prefix."""
    if isinstance(value, str):
        value = int(value, 16)
    return f"{value:064x}"


def abi_error_selector(contract: Contract, error_name: str) -> str:
    (entry,) = [item for item in contract.abi if item["type"] == "error" and item["name"] == error_name]
    types = ",".join(parameter["type"] for parameter in entry["inputs"])
    return selector(f"{error_name}({types})")


def events(contract: Contract, event_name: str, receipt: Any) -> list[Any]:
    """The receipt's ``event_name`` events emitted by ``contract`` itself, in log order.

    web3 decodes every log whose signature matches, whichever contract emitted it, and warns on
    the others; filtering by address first makes each assertion about one emitter.
    """
    own = {**receipt, "logs": [log for log in receipt["logs"] if log["address"] == contract.address]}
    return list(contract.events[event_name]().process_receipt(own, errors=DISCARD))


def new_intent_id() -> str:
    return f"pi_{uuid.uuid4().hex}"


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
    gas_estimate = call.estimate_gas({"from": account.address})
    block = w3.eth.get_block("latest")
    transaction = call.build_transaction(
        {
            "from": account.address,
            "chainId": w3.eth.chain_id,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "gas": gas_estimate * (100 + TRANSACTION_GAS_MARGIN_PERCENT) // 100,
            "maxFeePerGas": 2 * block["baseFeePerGas"] + 1,
            "maxPriorityFeePerGas": 1,
        }
    )
    signed = account.sign_transaction(transaction)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction), timeout=RECEIPT_TIMEOUT_S
    )
    assert receipt["status"] == 1, receipt
    return receipt


@dataclass(frozen=True)
class Deployment:
    w3: Web3
    factory: Contract
    implementation: Contract
    tokens: dict[str, Contract]
    relayer_key: str
    customer_key: str

    def forwarder(self, address: str) -> Contract:
        return self.w3.eth.contract(address=address, abi=load_artifact("DepositForwarder").abi)

    def pay(self, *, token: str, to: str, amount_base_units: int) -> None:
        """A plain transfer from the customer's wallet, as from any wallet or exchange."""
        send(self.w3, private_key=self.customer_key, call=self.tokens[token].functions.transfer(to, amount_base_units))

    def balance(self, token: str, account: str) -> int:
        return self.tokens[token].functions.balanceOf(account).call()

    def treasury(self) -> str:
        return self.factory.functions.treasury().call()


@pytest.fixture(scope="module")
def deployment(anvil: AnvilNode) -> Deployment:
    w3 = anvil.w3
    token_addresses = deploy_test_tokens(
        w3,
        deployer_private_key=anvil.private_keys[RELAYER],
        mint_to=[anvil.addresses[CUSTOMER]],
        mint_amount_base_units=MINTED_BASE_UNITS,
    )
    addresses = deploy_deposit_factory(
        w3, deployer_private_key=anvil.private_keys[RELAYER], treasury=anvil.addresses[TREASURY]
    )
    assert set(addresses) == {"DepositFactory", "DepositForwarder"}
    return Deployment(
        w3=w3,
        factory=w3.eth.contract(address=addresses["DepositFactory"], abi=load_artifact("DepositFactory").abi),
        implementation=w3.eth.contract(
            address=addresses["DepositForwarder"], abi=load_artifact("DepositForwarder").abi
        ),
        tokens={
            name: w3.eth.contract(address=address, abi=load_artifact(name).abi)
            for name, address in token_addresses.items()
        },
        relayer_key=anvil.private_keys[RELAYER],
        customer_key=anvil.private_keys[CUSTOMER],
    )


def predicted_address(deployment: Deployment, intent_id: str) -> str:
    return predict_deposit_address(
        factory=deployment.factory.address,
        implementation=deployment.implementation.address,
        salt=deposit_salt(intent_id),
    )


def sweep(deployment: Deployment, *, intent_id: str, token: str) -> Any:
    call = deployment.factory.functions.sweep(deposit_salt(intent_id), deployment.tokens[token].address)
    return send(deployment.w3, private_key=deployment.relayer_key, call=call)


# --- Deployment and address prediction ---------------------------------------------------------


def test_deploy_deposit_factory_sets_owner_treasury_and_a_locked_implementation(
    anvil: AnvilNode, deployment: Deployment
) -> None:
    factory, implementation = deployment.factory, deployment.implementation

    assert factory.functions.owner().call() == anvil.addresses[RELAYER]
    assert factory.functions.treasury().call() == anvil.addresses[TREASURY]
    assert factory.functions.implementation().call() == implementation.address
    assert factory.functions.SWEEP_BATCH_SIZE_MAX().call() == SWEEP_BATCH_SIZE_MAX
    # The implementation is initialised with the factory in its constructor: nobody can take it.
    assert implementation.functions.factory().call() == factory.address
    stranger = anvil.addresses[STRANGER]
    data = revert_data(deployment.w3, sender=stranger, call=implementation.functions.initialize(stranger))
    assert data == selector("ForwarderAlreadyInitialized(address)") + word(factory.address)


def test_python_prediction_equals_predict_address_equals_the_deployed_clone(
    anvil: AnvilNode, deployment: Deployment
) -> None:
    intent_id = new_intent_id()
    salt = deposit_salt(intent_id)
    predicted = predicted_address(deployment, intent_id)
    assert predicted == to_checksum_address(predicted)
    assert deployment.factory.functions.predictAddress(salt).call() == predicted
    assert deployment.w3.eth.get_code(predicted) == b""

    receipt = sweep(deployment, intent_id=intent_id, token="TestUSDC")

    (deployed,) = events(deployment.factory, "ForwarderDeployed", receipt)
    assert deployed["args"] == {"salt": salt, "forwarder": predicted}
    implementation_hex = deployment.implementation.address[2:].lower()
    code = deployment.w3.eth.get_code(predicted).to_0x_hex()
    assert code == CLONE_RUNTIME_PREFIX + implementation_hex + CLONE_RUNTIME_SUFFIX
    assert deployment.forwarder(predicted).functions.factory().call() == deployment.factory.address


def test_clone_init_code_is_the_eip_1167_creation_code() -> None:
    implementation = "0x" + "ab" * 20

    init_code = clone_init_code(implementation)

    assert init_code.hex() == "3d602d80600a3d3981f3363d3d373d3d3d363d73" + "ab" * 20 + "5af43d82803e903d91602b57fd5bf3"
    assert len(init_code) == 55


def test_deposit_salt_is_the_domain_separated_hash_of_the_intent_id() -> None:
    assert DEPOSIT_SALT_DOMAIN == b"settle/deposit/v1/"
    assert deposit_salt("pi_123") == keccak(b"settle/deposit/v1/pi_123")
    assert deposit_salt("pi_123") == deposit_salt("pi_123")
    assert deposit_salt("paiement-é") == keccak("settle/deposit/v1/paiement-é".encode())
    assert len(deposit_salt("x" * INTENT_ID_BYTES_MAX)) == 32


def test_different_intent_ids_give_different_addresses(deployment: Deployment) -> None:
    intent_ids = ["pi_1", "pi_2", "pi_10", "PI_1", "pi_1 ", new_intent_id()]

    salts = {deposit_salt(intent_id) for intent_id in intent_ids}
    addresses = {predicted_address(deployment, intent_id) for intent_id in intent_ids}
    on_chain = {deployment.factory.functions.predictAddress(deposit_salt(intent_id)).call() for intent_id in intent_ids}

    assert len(salts) == len(addresses) == len(intent_ids)
    assert on_chain == addresses


def test_the_address_depends_on_the_factory_and_the_implementation(deployment: Deployment) -> None:
    salt = deposit_salt("pi_1")
    factory, implementation = deployment.factory.address, deployment.implementation.address

    address = predict_deposit_address(factory=factory, implementation=implementation, salt=salt)

    assert predict_deposit_address(factory=factory.lower(), implementation=implementation.lower(), salt=salt) == address
    assert predict_deposit_address(factory=implementation, implementation=implementation, salt=salt) != address
    assert predict_deposit_address(factory=factory, implementation=factory, salt=salt) != address


@pytest.mark.parametrize("intent_id", ["", "x" * (INTENT_ID_BYTES_MAX + 1), "é" * (INTENT_ID_BYTES_MAX // 2 + 1)])
def test_deposit_salt_refuses_empty_and_overlong_intent_ids(intent_id: str) -> None:
    with pytest.raises(ValueError, match="intent_id"):
        deposit_salt(intent_id)


def test_deposit_salt_refuses_non_strings() -> None:
    with pytest.raises(TypeError, match="intent_id"):
        deposit_salt(b"pi_1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"factory": "0x" + "11" * 20, "implementation": "0x" + "22" * 20, "salt": b"\x00" * 31}, "salt"),
        ({"factory": "0x" + "11" * 20, "implementation": "0x" + "22" * 20, "salt": "00" * 32}, "salt"),
        ({"factory": "0x" + "11" * 19, "implementation": "0x" + "22" * 20, "salt": b"\x00" * 32}, "factory"),
        ({"factory": "0x" + "11" * 20, "implementation": "22" * 21, "salt": b"\x00" * 32}, "implementation"),
        # A mixed-case address whose checksum is wrong is a typo, not an address.
        (
            {"factory": "0x" + "aB" * 20, "implementation": "0x" + "22" * 20, "salt": b"\x00" * 32},
            "factory",
        ),
    ],
)
def test_predict_deposit_address_refuses_malformed_input(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        predict_deposit_address(**arguments)


# --- Sweeping ----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["TestUSDC", "TestUSDT"])
def test_a_plain_transfer_before_any_deploy_is_swept_exactly_to_the_treasury(
    deployment: Deployment, token: str
) -> None:
    intent_id = new_intent_id()
    salt = deposit_salt(intent_id)
    deposit_address = predicted_address(deployment, intent_id)
    amount = 123_456_789
    treasury = deployment.treasury()
    deployment.pay(token=token, to=deposit_address, amount_base_units=amount)
    assert deployment.w3.eth.get_code(deposit_address) == b""
    assert deployment.balance(token, deposit_address) == amount
    treasury_before = deployment.balance(token, treasury)
    token_address = deployment.tokens[token].address
    # The relayer can read the amount a sweep would move before paying for it.
    relayer = deployment.factory.functions.owner().call()
    assert deployment.factory.functions.sweep(salt, token_address).call({"from": relayer}) == amount

    receipt = sweep(deployment, intent_id=intent_id, token=token)

    assert deployment.balance(token, deposit_address) == 0
    assert deployment.balance(token, treasury) == treasury_before + amount
    (swept,) = events(deployment.factory, "Swept", receipt)
    assert swept["args"] == {
        "salt": salt,
        "forwarder": deposit_address,
        "token": token_address,
        "amount": amount,
        "treasury": treasury,
    }
    (flushed,) = events(deployment.forwarder(deposit_address), "Flushed", receipt)
    assert flushed["args"] == {"token": token_address, "treasury": treasury, "amount": amount}
    (transfer,) = events(deployment.tokens[token], "Transfer", receipt)
    assert transfer["args"] == {"from": deposit_address, "to": treasury, "value": amount}
    # Salt, forwarder and token are indexed, so watchers can filter sweeps by intent.
    swept_topic = keccak(text="Swept(bytes32,address,address,uint256,address)")
    (swept_log,) = [log for log in receipt["logs"] if log["topics"][0] == swept_topic]
    assert swept_log["address"] == deployment.factory.address
    assert swept_log["topics"][1:] == [salt, bytes.fromhex(word(deposit_address)), bytes.fromhex(word(token_address))]


def test_a_later_payment_is_swept_from_the_deployed_forwarder(deployment: Deployment) -> None:
    intent_id = new_intent_id()
    deposit_address = predicted_address(deployment, intent_id)
    treasury = deployment.treasury()
    deployment.pay(token="TestUSDT", to=deposit_address, amount_base_units=1_000)
    first = sweep(deployment, intent_id=intent_id, token="TestUSDT")
    assert len(events(deployment.factory, "ForwarderDeployed", first)) == 1
    treasury_before = deployment.balance("TestUSDT", treasury)

    deployment.pay(token="TestUSDT", to=deposit_address, amount_base_units=2_500)
    second = sweep(deployment, intent_id=intent_id, token="TestUSDT")

    assert events(deployment.factory, "ForwarderDeployed", second) == []
    (swept,) = events(deployment.factory, "Swept", second)
    assert swept["args"]["amount"] == 2_500
    assert swept["args"]["forwarder"] == deposit_address
    assert deployment.balance("TestUSDT", deposit_address) == 0
    assert deployment.balance("TestUSDT", treasury) == treasury_before + 2_500
    # The same address takes other tokens too.
    deployment.pay(token="TestUSDC", to=deposit_address, amount_base_units=7)
    (swept,) = events(deployment.factory, "Swept", sweep(deployment, intent_id=intent_id, token="TestUSDC"))
    assert swept["args"]["amount"] == 7


def test_sweeping_an_empty_address_succeeds_and_reports_zero(deployment: Deployment) -> None:
    intent_id = new_intent_id()
    deposit_address = predicted_address(deployment, intent_id)
    treasury = deployment.treasury()
    treasury_before = deployment.balance("TestUSDT", treasury)

    # Chosen behaviour: an empty sweep is not an error, so retries and batches never fail on it.
    receipt = sweep(deployment, intent_id=intent_id, token="TestUSDT")
    again = sweep(deployment, intent_id=intent_id, token="TestUSDT")

    for each in (receipt, again):
        (swept,) = events(deployment.factory, "Swept", each)
        assert swept["args"]["amount"] == 0
        assert events(deployment.tokens["TestUSDT"], "Transfer", each) == []
    assert deployment.balance("TestUSDT", treasury) == treasury_before
    assert deployment.w3.eth.get_code(deposit_address) != b""


def test_sweep_batch_sweeps_several_intents_and_tokens_in_one_transaction(deployment: Deployment) -> None:
    intent_ids = [new_intent_id() for _ in range(4)]
    deposit_addresses = [predicted_address(deployment, intent_id) for intent_id in intent_ids]
    treasury = deployment.treasury()
    deployment.pay(token="TestUSDC", to=deposit_addresses[0], amount_base_units=100)
    deployment.pay(token="TestUSDT", to=deposit_addresses[1], amount_base_units=200)
    deployment.pay(token="TestUSDC", to=deposit_addresses[2], amount_base_units=300)
    deployment.pay(token="TestUSDT", to=deposit_addresses[2], amount_base_units=400)
    # deposit_addresses[3] stays empty.
    items = [(0, "TestUSDC"), (1, "TestUSDT"), (2, "TestUSDC"), (2, "TestUSDT"), (3, "TestUSDC")]
    salts = [deposit_salt(intent_ids[index]) for index, _ in items]
    token_addresses = [deployment.tokens[token].address for _, token in items]
    before = {token: deployment.balance(token, treasury) for token in deployment.tokens}
    call = deployment.factory.functions.sweepBatch(salts, token_addresses)
    assert call.call({"from": deployment.factory.functions.owner().call()}) == [100, 200, 300, 400, 0]

    receipt = send(deployment.w3, private_key=deployment.relayer_key, call=call)

    swept = events(deployment.factory, "Swept", receipt)
    assert [(event["args"]["forwarder"], event["args"]["token"], event["args"]["amount"]) for event in swept] == [
        (deposit_addresses[0], token_addresses[0], 100),
        (deposit_addresses[1], token_addresses[1], 200),
        (deposit_addresses[2], token_addresses[2], 300),
        (deposit_addresses[2], token_addresses[3], 400),
        (deposit_addresses[3], token_addresses[4], 0),
    ]
    # Intent 2 appears twice but its forwarder is deployed once.
    deployed = events(deployment.factory, "ForwarderDeployed", receipt)
    assert [event["args"]["forwarder"] for event in deployed] == deposit_addresses
    assert deployment.balance("TestUSDC", treasury) == before["TestUSDC"] + 400
    assert deployment.balance("TestUSDT", treasury) == before["TestUSDT"] + 600
    for address in deposit_addresses:
        assert deployment.balance("TestUSDC", address) == deployment.balance("TestUSDT", address) == 0


def test_sweep_batch_size_is_bounded(anvil: AnvilNode, deployment: Deployment) -> None:
    factory, owner = deployment.factory, anvil.addresses[RELAYER]
    token = deployment.tokens["TestUSDC"].address
    error = selector("DepositFactoryBatchSizeInvalid(uint256,uint256)")
    assert abi_error_selector(factory, "DepositFactoryBatchSizeInvalid") == error
    oversized = SWEEP_BATCH_SIZE_MAX + 1
    oversized_salts = [deposit_salt(f"pi_{index}") for index in range(oversized)]

    too_large = revert_data(
        deployment.w3,
        sender=owner,
        call=factory.functions.sweepBatch(oversized_salts, [token] * oversized),
    )
    empty = revert_data(deployment.w3, sender=owner, call=factory.functions.sweepBatch([], []))
    mismatched = revert_data(
        deployment.w3, sender=owner, call=factory.functions.sweepBatch([deposit_salt("pi_1")], [token, token])
    )

    assert too_large == error + word(oversized) + word(SWEEP_BATCH_SIZE_MAX)
    assert empty == error + word(0) + word(SWEEP_BATCH_SIZE_MAX)
    assert mismatched == selector("DepositFactoryBatchLengthMismatch(uint256,uint256)") + word(1) + word(2)
    # The largest allowed batch is accepted.
    full = [deposit_salt(f"pi_full_{index}") for index in range(SWEEP_BATCH_SIZE_MAX)]
    assert "error" not in raw_eth_call(
        deployment.w3, sender=owner, call=factory.functions.sweepBatch(full, [token] * SWEEP_BATCH_SIZE_MAX)
    )


# --- Access control ----------------------------------------------------------------------------


def test_only_the_owner_or_an_allowed_sweeper_may_sweep(anvil: AnvilNode, deployment: Deployment) -> None:
    w3, factory = deployment.w3, deployment.factory
    salt, token = deposit_salt(new_intent_id()), deployment.tokens["TestUSDC"].address
    error = selector("DepositFactoryUnauthorizedSweeper(address)")
    assert abi_error_selector(factory, "DepositFactoryUnauthorizedSweeper") == error

    for account in (anvil.addresses[STRANGER], anvil.addresses[SWEEPER], anvil.addresses[TREASURY]):
        assert revert_data(w3, sender=account, call=factory.functions.sweep(salt, token)) == error + word(account)
        batch = factory.functions.sweepBatch([salt], [token])
        assert revert_data(w3, sender=account, call=batch) == error + word(account)

    sweeper = anvil.addresses[SWEEPER]
    receipt = send(w3, private_key=deployment.relayer_key, call=factory.functions.setSweeper(sweeper, True))
    (event,) = events(factory, "SweeperSet", receipt)
    assert event["args"] == {"account": sweeper, "allowed": True}
    assert factory.functions.isSweeper(sweeper).call() is True
    send(w3, private_key=anvil.private_keys[SWEEPER], call=factory.functions.sweep(salt, token))

    send(w3, private_key=deployment.relayer_key, call=factory.functions.setSweeper(sweeper, False))
    assert revert_data(w3, sender=sweeper, call=factory.functions.sweep(salt, token)) == error + word(sweeper)
    # Only the owner manages sweepers.
    assert revert_data(
        w3, sender=anvil.addresses[STRANGER], call=factory.functions.setSweeper(anvil.addresses[STRANGER], True)
    ) == selector("OwnableUnauthorizedAccount(address)") + word(anvil.addresses[STRANGER])
    assert revert_data(
        w3, sender=anvil.addresses[RELAYER], call=factory.functions.setSweeper("0x" + "00" * 20, True)
    ) == selector("DepositFactoryInvalidSweeper(address)") + word(0)


def test_set_treasury_is_owner_only_and_redirects_later_sweeps(anvil: AnvilNode, deployment: Deployment) -> None:
    w3, factory = deployment.w3, deployment.factory
    old_treasury, new_treasury = anvil.addresses[TREASURY], anvil.addresses[NEW_TREASURY]
    stranger = anvil.addresses[STRANGER]
    assert revert_data(w3, sender=stranger, call=factory.functions.setTreasury(stranger)) == selector(
        "OwnableUnauthorizedAccount(address)"
    ) + word(stranger)
    invalid = selector("DepositFactoryInvalidTreasury(address)")
    for refused in ("0x" + "00" * 20, factory.address):
        data = revert_data(w3, sender=anvil.addresses[RELAYER], call=factory.functions.setTreasury(refused))
        assert data == invalid + word(refused)
    # A forwarder deployed under the old treasury flushes to the new one.
    intent_id = new_intent_id()
    deposit_address = predicted_address(deployment, intent_id)
    sweep(deployment, intent_id=intent_id, token="TestUSDC")
    deployment.pay(token="TestUSDC", to=deposit_address, amount_base_units=55)
    new_before = deployment.balance("TestUSDC", new_treasury)

    try:
        receipt = send(w3, private_key=deployment.relayer_key, call=factory.functions.setTreasury(new_treasury))
        (changed,) = events(factory, "TreasuryChanged", receipt)
        assert changed["args"] == {"previousTreasury": old_treasury, "newTreasury": new_treasury}
        (swept,) = events(factory, "Swept", sweep(deployment, intent_id=intent_id, token="TestUSDC"))
    finally:
        send(w3, private_key=deployment.relayer_key, call=factory.functions.setTreasury(old_treasury))

    assert swept["args"]["treasury"] == new_treasury
    assert deployment.balance("TestUSDC", new_treasury) == new_before + 55


def test_ownership_moves_only_when_the_new_owner_accepts(anvil: AnvilNode, deployment: Deployment) -> None:
    w3, factory = deployment.w3, deployment.factory
    relayer, successor = anvil.addresses[RELAYER], anvil.addresses[SWEEPER]
    send(w3, private_key=deployment.relayer_key, call=factory.functions.transferOwnership(successor))

    try:
        # Until accepted, the relayer still owns the factory and the successor cannot sweep.
        assert factory.functions.owner().call() == relayer
        assert factory.functions.pendingOwner().call() == successor
        assert factory.functions.isSweeper(successor).call() is False
        sweep_call = factory.functions.sweep(deposit_salt(new_intent_id()), deployment.tokens["TestUSDC"].address)
        assert revert_data(w3, sender=successor, call=sweep_call) == selector(
            "DepositFactoryUnauthorizedSweeper(address)"
        ) + word(successor)
        send(w3, private_key=anvil.private_keys[SWEEPER], call=factory.functions.acceptOwnership())
        assert factory.functions.owner().call() == successor
    finally:
        if factory.functions.owner().call() == successor:
            send(w3, private_key=anvil.private_keys[SWEEPER], call=factory.functions.transferOwnership(relayer))
            send(w3, private_key=deployment.relayer_key, call=factory.functions.acceptOwnership())
        else:
            send(w3, private_key=deployment.relayer_key, call=factory.functions.transferOwnership(relayer))
            send(w3, private_key=deployment.relayer_key, call=factory.functions.acceptOwnership())

    assert factory.functions.owner().call() == relayer


def test_ownership_cannot_be_renounced(anvil: AnvilNode, deployment: Deployment) -> None:
    call = deployment.factory.functions.renounceOwnership()

    data = revert_data(deployment.w3, sender=anvil.addresses[RELAYER], call=call)

    assert data == selector("DepositFactoryRenounceOwnershipDisabled()")


def test_forwarder_flush_by_anyone_but_the_factory_reverts(anvil: AnvilNode, deployment: Deployment) -> None:
    intent_id = new_intent_id()
    deposit_address = predicted_address(deployment, intent_id)
    deployment.pay(token="TestUSDC", to=deposit_address, amount_base_units=10)
    sweep(deployment, intent_id=intent_id, token="TestUSDT")
    forwarder = deployment.forwarder(deposit_address)
    token = deployment.tokens["TestUSDC"].address
    error = selector("ForwarderUnauthorizedCaller(address,address)")
    assert abi_error_selector(forwarder, "ForwarderUnauthorizedCaller") == error

    for caller in (anvil.addresses[RELAYER], anvil.addresses[STRANGER]):
        data = revert_data(deployment.w3, sender=caller, call=forwarder.functions.flush(token))
        assert data == error + word(caller) + word(deployment.factory.address)

    assert deployment.balance("TestUSDC", deposit_address) == 10


def test_forwarder_cannot_be_initialised_twice(anvil: AnvilNode, deployment: Deployment) -> None:
    intent_id = new_intent_id()
    deposit_address = predicted_address(deployment, intent_id)
    receipt = sweep(deployment, intent_id=intent_id, token="TestUSDC")
    forwarder = deployment.forwarder(deposit_address)
    (initialized,) = events(forwarder, "ForwarderInitialized", receipt)
    assert initialized["args"] == {"factory": deployment.factory.address}

    data = revert_data(
        deployment.w3, sender=anvil.addresses[STRANGER], call=forwarder.functions.initialize(anvil.addresses[STRANGER])
    )

    assert data == selector("ForwarderAlreadyInitialized(address)") + word(deployment.factory.address)
    assert forwarder.functions.factory().call() == deployment.factory.address


def test_sweeping_a_token_without_code_reverts_with_the_custom_error(anvil: AnvilNode, deployment: Deployment) -> None:
    not_a_token = anvil.addresses[STRANGER]

    data = revert_data(
        deployment.w3,
        sender=anvil.addresses[RELAYER],
        call=deployment.factory.functions.sweep(deposit_salt(new_intent_id()), not_a_token),
    )

    assert data == selector("ForwarderTokenNotContract(address)") + word(not_a_token)


# --- Gas ---------------------------------------------------------------------------------------


def test_gas_of_a_first_sweep_and_of_a_batch_of_first_sweeps(deployment: Deployment) -> None:
    single_intent = new_intent_id()
    deployment.pay(token="TestUSDT", to=predicted_address(deployment, single_intent), amount_base_units=1_000_000)
    single_gas = sweep(deployment, intent_id=single_intent, token="TestUSDT")["gasUsed"]
    deployment.pay(token="TestUSDT", to=predicted_address(deployment, single_intent), amount_base_units=1_000_000)
    repeat_gas = sweep(deployment, intent_id=single_intent, token="TestUSDT")["gasUsed"]

    batch_intents = [new_intent_id() for _ in range(BATCH_GAS_SWEEPS)]
    for intent_id in batch_intents:
        deployment.pay(token="TestUSDC", to=predicted_address(deployment, intent_id), amount_base_units=1_000_000)
    call = deployment.factory.functions.sweepBatch(
        [deposit_salt(intent_id) for intent_id in batch_intents],
        [deployment.tokens["TestUSDC"].address] * BATCH_GAS_SWEEPS,
    )
    batch_gas = send(deployment.w3, private_key=deployment.relayer_key, call=call)["gasUsed"]

    print(
        f"\ngas: first sweep (deploy + flush) {single_gas}, repeat sweep (flush) {repeat_gas}, "
        f"batch of {BATCH_GAS_SWEEPS} first sweeps {batch_gas} ({batch_gas // BATCH_GAS_SWEEPS} per sweep)"
    )
    assert repeat_gas < single_gas <= FIRST_SWEEP_GAS_MAX
    assert batch_gas <= BATCH_OF_FIRST_SWEEPS_GAS_MAX
    # Batching amortises the 21,000 base cost of a transaction.
    assert batch_gas < BATCH_GAS_SWEEPS * single_gas
