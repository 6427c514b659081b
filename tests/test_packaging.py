"""What must resolve together does, and imports."""

import importlib.metadata
import subprocess
import sys


def test_web3_and_tronpy_pins_hold_and_import():
    assert importlib.metadata.version("tronpy") == "0.6.2"
    assert importlib.metadata.version("web3").split(".")[0] == "7"
    import tronpy
    from tronpy import Tron
    from tronpy.providers import HTTPProvider
    import web3

    client = Tron(provider=HTTPProvider("http://127.0.0.1:1"))
    assert client.is_address("TN3W4H6rK2ce4vX9YnFQHwKENnHjoxb3m9")
    assert web3.Web3.is_checksum_address("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    assert tronpy.__name__ == "tronpy"


def test_pip_check_passes():
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_packages_import():
    for name in ("temporalio", "fastapi", "asyncpg", "sqlalchemy", "pydantic", "web3", "tronpy", "httpx",
                 "prometheus_client", "pydantic_settings", "alembic", "standardwebhooks", "segno", "eth_account"):
        __import__(name)
