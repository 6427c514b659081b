"""One catalogue of error types (domain.errors): every type an activity or workflow raises, every
type a retry policy lists as non-retryable, every type a workflow or the API branches on, is one
of its names. A misspelt non-retryable type would otherwise be retried for ever, silently."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from temporalio.common import RetryPolicy

from domain import errors
from domain.errors import ERROR_TYPES

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("activities", "workflows", "api", "worker")


def _sources() -> list[Path]:
    return sorted(path for package in SCANNED for path in (ROOT / package).rglob("*.py"))


def _literal_types(tree: ast.AST) -> list[tuple[int, str]]:
    """String literals given as an ApplicationError's `type`, listed in `non_retryable_error_types`,
    or compared with an error's `.type`."""
    calls = {keyword: node for node in ast.walk(tree) if isinstance(node, ast.Call) for keyword in node.keywords}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "type" and _names(calls[node].func) == "ApplicationError":
            values = [node.value]
        elif isinstance(node, ast.keyword) and node.arg == "non_retryable_error_types" and isinstance(node.value, ast.List):
            values = list(node.value.elts)
        elif isinstance(node, ast.Compare) and any(_names(side) == "type" for side in (node.left, *node.comparators)):
            values = [node.left, *node.comparators]
        else:
            continue
        found += [(value.lineno, value.value) for value in values if isinstance(value, ast.Constant) and isinstance(value.value, str)]
    return found


def _names(node: ast.AST) -> str | None:
    """`x` of a name `x` or an attribute `a.x`."""
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def test_every_error_type_spelt_in_the_code_is_in_the_catalogue():
    strays = []
    for path in _sources():
        literals = _literal_types(ast.parse(path.read_text()))
        strays += [f"{path.relative_to(ROOT)}:{line}: {value}" for line, value in literals if value not in ERROR_TYPES]
    assert not strays, strays


def test_the_scan_sees_a_misspelt_type():
    source = (
        'raise ApplicationError("x", type="LedgerTransferRefussed", non_retryable=True)\n'
        'RetryPolicy(non_retryable_error_types=["DataRefused"])\n'
        'if cause.type == "RefundTreasuryShort": pass\n'
        'Field(type="not an error")\n'
    )
    assert sorted(_literal_types(ast.parse(source))) == [(1, "LedgerTransferRefussed"), (2, "DataRefused"), (3, "RefundTreasuryShort")]


def _workflow_policies() -> dict[str, RetryPolicy]:
    policies = {}
    for path in sorted((ROOT / "workflows").glob("*.py")):
        module = importlib.import_module(f"workflows.{path.stem}")
        policies.update({f"{path.stem}.{name}": value for name, value in vars(module).items() if isinstance(value, RetryPolicy)})
    return policies


@pytest.mark.parametrize("name, policy", sorted(_workflow_policies().items()))
def test_every_non_retryable_type_of_a_policy_is_in_the_catalogue(name, policy):
    assert set(policy.non_retryable_error_types or []) <= ERROR_TYPES


def test_the_catalogue_names_each_type_once():
    names = {name: value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)}
    assert set(names.values()) == ERROR_TYPES and len(names) == len(ERROR_TYPES)
