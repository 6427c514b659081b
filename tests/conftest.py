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


def _remove_stack(stack: Stack) -> dict[str, int]:
    """Stop a test stack by its pids and delete its folders; returns the pids that survived."""
    pids = stack.pids()
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
