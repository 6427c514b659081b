"""Every retry policy a workflow uses is bounded, or names the errors no retry can mend; and the
worker's interceptor turns every data error of any activity into one of those."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import asyncpg
import pytest
from temporalio.common import RetryPolicy

from activities.errors import DATA_REFUSED, non_retryable_of

WORKFLOWS_DIR = Path(__file__).resolve().parents[2] / "workflows"


def _module_policies() -> dict[str, RetryPolicy]:
    policies = {}
    for path in sorted(WORKFLOWS_DIR.glob("*.py")):
        module = importlib.import_module(f"workflows.{path.stem}")
        for name, value in vars(module).items():
            if isinstance(value, RetryPolicy):
                policies[f"{path.stem}.{name}"] = value
    return policies


def test_every_shared_retry_policy_is_bounded_or_lists_data_refused():
    policies = _module_policies()
    assert {"retry_policies.DB_RETRY", "retry_policies.CHAIN_RETRY", "retry_policies.WATCH_RETRY"} <= set(policies)
    unbounded = {
        name for name, policy in policies.items()
        if policy.maximum_attempts == 0 and DATA_REFUSED not in (policy.non_retryable_error_types or [])
    }
    assert not unbounded, f"retry for ever on data errors: {sorted(unbounded)}"


def test_no_workflow_builds_a_retry_policy_inline():
    """Inline policies escape the check above: each must be a module-level name."""
    inline = []
    for path in sorted(WORKFLOWS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "retry_policy" and isinstance(node.value, ast.Call):
                inline.append(f"{path.name}:{node.value.lineno}")
    assert not inline, inline


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.CharacterNotInRepertoireError("invalid byte sequence for encoding \"UTF8\": 0x00"),
        asyncpg.NumericValueOutOfRangeError("numeric field overflow"),
        asyncpg.CheckViolationError("new row violates check constraint"),
        asyncpg.UniqueViolationError("duplicate key"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    ],
)
def test_data_errors_become_non_retryable_without_their_data(error):
    translated = non_retryable_of(error)
    assert translated is not None and translated.non_retryable and translated.type == DATA_REFUSED
    assert "0x00" not in translated.message and "\ud800" not in translated.message


@pytest.mark.parametrize("error", [asyncpg.CannotConnectNowError("starting up"), ConnectionResetError(), OSError("down")])
def test_transient_errors_stay_retryable(error):
    assert non_retryable_of(error) is None
