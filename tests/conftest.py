"""One real local stack per test session (PostgreSQL, Temporal dev server, anvil, a worker, the
API), started on free ports from the project's own files and stopped at the end, with a check
that no process it started survives. Tests isolate themselves by tenant, task queue and ids."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from pathlib import Path

import pytest

from cli.processes import pid_alive
from cli.stack import Stack

STACK_PREFIX = "settle-test-stack-"
OWNER_FILE = "owner.pid"


def pytest_configure(config):
    # A run stopped with SIGTERM (a CI timeout, `timeout`, kill) still tears its stack down.
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


EXTRA_PIDS_FILE = "extra.pids"


def _remove_stack(stack: Stack) -> dict[str, int]:
    """Stop a test stack by its pids (and the extra processes its tests started, such as private
    anvils) and delete its folders; returns the pids that survived."""
    from cli.processes import stop_pid

    pids = stack.pids()
    try:
        extra = [int(line) for line in (stack.state_dir / EXTRA_PIDS_FILE).read_text().split()]
    except (OSError, ValueError):
        extra = []
    for pid in extra:
        stop_pid(pid, timeout_s=10)
        pids[f"extra-{pid}"] = pid
    postgres_dir = stack.load_state().get("services", {}).get("postgres", {}).get("data_dir")
    stack.down()
    survivors = {name: pid for name, pid in pids.items() if pid_alive(pid)}
    shutil.rmtree(stack.state_dir, ignore_errors=True)
    if postgres_dir and not Path(postgres_dir).is_relative_to(stack.state_dir):
        shutil.rmtree(Path(postgres_dir).parent, ignore_errors=True)
    return survivors


def _reap_orphaned_stacks() -> None:
    """Stacks of earlier runs that died without teardown (SIGKILL): their owner pid is gone."""
    for state_dir in Path(tempfile.gettempdir()).glob(STACK_PREFIX + "*"):
        try:
            owner = int((state_dir / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not pid_alive(owner):
            _remove_stack(Stack(state_dir=state_dir, database_url_override=None))


@pytest.fixture(scope="session")
def stack_instance():
    _reap_orphaned_stacks()
    # 0o755 so that, under root, the unprivileged PostgreSQL user can enter it.
    state_dir = Path(tempfile.mkdtemp(prefix=STACK_PREFIX))
    os.chmod(state_dir, 0o755)
    (state_dir / OWNER_FILE).write_text(str(os.getpid()))
    stack = Stack(state_dir=state_dir)
    try:
        stack.up()
        yield stack
    finally:
        survivors = _remove_stack(stack)
        assert not survivors, f"processes of the test stack survived `down`: {survivors}"


@pytest.fixture(scope="session")
def stack(stack_instance) -> dict:
    """The running stack's description: the same object `settle up --json` prints."""
    return stack_instance.describe()


@pytest.fixture(scope="session")
async def temporal_client(stack):
    from temporalio.client import Client

    return await Client.connect(stack["temporal_address"], namespace=stack["temporal_namespace"])


@pytest.fixture(scope="session")
async def db_pool(stack):
    from db.pool import create_pool

    pool = await create_pool(stack["database_url"], size_max=20)
    yield pool
    await pool.close()


@pytest.fixture
def unique_id() -> str:
    return uuid.uuid4().hex[:12]


def register_extra_process(stack_instance: Stack, pid: int) -> None:
    """A process a test starts beside the stack: stopped with the stack, even after a SIGKILLed run."""
    with open(stack_instance.state_dir / EXTRA_PIDS_FILE, "a") as handle:
        handle.write(f"{pid}\n")


@pytest.fixture(scope="module")
def private_chain(tmp_path_factory, stack_instance):
    """A private anvil (its own chain id, in memory) with the tokens and the deposit factory, for
    tests that would disturb the shared chain: reorgs, watcher cursors, nonce races."""
    from web3 import Web3

    from cli.processes import free_port, stop_pid
    from cli.stack import dev_accounts, start_anvil
    from contracts.deploy import deploy_test_tokens
    from contracts.deposit import deploy_deposit_factory

    chain_id = 40_000 + int(uuid.uuid4().int % 10_000)
    log_path = tmp_path_factory.mktemp("private-chain") / "anvil.log"
    node = start_anvil(state_dir=None, log_path=log_path, port=free_port(), chain_id=chain_id)
    register_extra_process(stack_instance, node["pid"])
    try:
        w3 = Web3(Web3.HTTPProvider(node["rpc_url"], request_kwargs={"timeout": 10}))
        accounts = dev_accounts()
        contracts = deploy_test_tokens(
            w3,
            deployer_private_key=accounts["relayer"]["private_key"],
            mint_to=[accounts["customer"]["address"]],
            mint_amount_base_units=1_000_000 * 10**6,
        )
        contracts.update(
            deploy_deposit_factory(w3, deployer_private_key=accounts["relayer"]["private_key"], treasury=accounts["treasury"]["address"])
        )
        yield {"chain_id": chain_id, "rpc_url": node["rpc_url"], "contracts": contracts, "accounts": accounts, "w3": w3}
    finally:
        stop_pid(node["pid"])
