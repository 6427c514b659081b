"""The committed artifacts match a fresh compile, and the loader reads them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from contracts import Artifact, UnknownArtifactError, artifact_names, load_artifact

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIRECTORY = REPOSITORY_ROOT / "contracts"
COMPILE_TIMEOUT_S = 120.0


def run_compile(*arguments: str, repository_root: Path = REPOSITORY_ROOT) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node is not None, "node is required to compile the contracts"
    return subprocess.run(
        [node, "contracts/compile.js", *arguments],
        cwd=repository_root,
        capture_output=True,
        text=True,
        timeout=COMPILE_TIMEOUT_S,
        check=False,
    )


def test_committed_artifacts_match_a_fresh_compile() -> None:
    result = run_compile("--check")
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"


@pytest.fixture
def repository_copy(tmp_path: Path) -> Path:
    """A scratch copy of contracts/ beside the real node_modules, safe to tamper with."""
    shutil.copytree(
        CONTRACTS_DIRECTORY,
        tmp_path / "contracts",
        ignore=shutil.ignore_patterns("__pycache__", "*.py"),
    )
    (tmp_path / "node_modules").symlink_to(REPOSITORY_ROOT / "node_modules", target_is_directory=True)
    return tmp_path


def test_check_names_an_artifact_that_differs(repository_copy: Path) -> None:
    artifact_path = repository_copy / "contracts" / "artifacts" / "TestUSDT.json"
    document = json.loads(artifact_path.read_text())
    document["bytecode"] = document["bytecode"][:-2] + "00"
    artifact_path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")

    result = run_compile("--check", repository_root=repository_copy)

    assert result.returncode == 1
    assert "TestUSDT.json" in result.stderr
    assert "TestUSDC.json" not in result.stderr


def test_check_names_a_missing_and_a_stale_artifact(repository_copy: Path) -> None:
    artifacts = repository_copy / "contracts" / "artifacts"
    (artifacts / "TestUSDC.json").rename(artifacts / "Removed.json")

    result = run_compile("--check", repository_root=repository_copy)

    assert result.returncode == 1
    assert "missing: contracts/artifacts/TestUSDC.json" in result.stderr
    assert "stale (no such contract in the sources): contracts/artifacts/Removed.json" in result.stderr


def test_compile_error_exits_non_zero_with_the_compiler_message(repository_copy: Path) -> None:
    source = repository_copy / "contracts" / "src" / "Broken.sol"
    source.write_text("// SPDX-License-Identifier: MIT\npragma solidity ^0.8.28;\ncontract Broken { uint256 x = ; }\n")
    before = {path.name: path.read_bytes() for path in (repository_copy / "contracts" / "artifacts").iterdir()}

    result = run_compile(repository_root=repository_copy)

    assert result.returncode == 1
    assert "ParserError" in result.stderr
    assert "Broken.sol" in result.stderr
    after = {path.name: path.read_bytes() for path in (repository_copy / "contracts" / "artifacts").iterdir()}
    assert after == before


def test_artifact_names_lists_the_test_tokens() -> None:
    assert {"TestUSDC", "TestUSDT"} <= set(artifact_names())


@pytest.mark.parametrize("name", ["TestUSDC", "TestUSDT"])
def test_load_artifact_returns_abi_and_bytecode(name: str) -> None:
    artifact = load_artifact(name)

    assert isinstance(artifact, Artifact)
    assert artifact.name == name
    assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 2
    assert artifact.deployed_bytecode.startswith("0x") and len(artifact.deployed_bytecode) > 2
    # Creation code ends with the runtime code's CBOR metadata, which holds the source hash.
    assert artifact.deployed_bytecode[-100:] in artifact.bytecode
    function_names = {entry["name"] for entry in artifact.abi if entry["type"] == "function"}
    assert {"mint", "transfer", "transferFrom", "approve", "balanceOf", "decimals"} <= function_names


def test_test_usdt_abi_declares_no_return_values() -> None:
    abi = load_artifact("TestUSDT").abi
    outputs = {entry["name"]: entry["outputs"] for entry in abi if entry["type"] == "function"}

    assert outputs["transfer"] == []
    assert outputs["transferFrom"] == []
    assert outputs["approve"] == []


def test_artifact_is_immutable() -> None:
    artifact = load_artifact("TestUSDC")

    with pytest.raises(AttributeError):
        artifact.bytecode = "0x"  # type: ignore[misc]


def test_unknown_name_lists_the_available_names() -> None:
    with pytest.raises(UnknownArtifactError) as error_info:
        load_artifact("TestDAI")

    message = str(error_info.value)
    assert "'TestDAI'" in message
    assert "TestUSDC" in message and "TestUSDT" in message
    assert isinstance(error_info.value, LookupError)


@pytest.mark.parametrize("name", ["../artifacts/TestUSDC", "TestUSDC.json", "", "testusdc"])
def test_names_that_are_not_contract_names_are_unknown(name: str) -> None:
    with pytest.raises(UnknownArtifactError):
        load_artifact(name)
