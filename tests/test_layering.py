"""The import rules of shared/ARCHITECTURE.md that a grep can check: chain clients only behind the
chain adapter; workflows do no I/O; the domain imports nothing of ours."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["activities", "api", "db", "domain", "worker", "workflows"]
CHAIN_CLIENTS = {"web3", "eth_abi", "tronpy"}
OURS = {"activities", "api", "cli", "contracts", "db", "domain", "worker", "workflows"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def test_only_chain_adapters_import_chain_clients():
    offenders = [
        f"{path.relative_to(ROOT)}: {sorted(_imports(path) & CHAIN_CLIENTS)}"
        for package in PACKAGES
        for path in _modules(package)
        if _imports(path) & CHAIN_CLIENTS and not path.relative_to(ROOT).as_posix().startswith("activities/chains/")
    ]
    assert not offenders, offenders


def test_domain_imports_nothing_of_ours_and_workflows_no_database():
    domain = [f"{p.relative_to(ROOT)}" for p in _modules("domain") if _imports(p) & (OURS - {"domain"})]
    assert not domain, domain
    workflows = [f"{p.relative_to(ROOT)}" for p in _modules("workflows") if _imports(p) & {"db", "asyncpg", "httpx", "api"}]
    assert not workflows, workflows
