"""The committed workflow histories (tests/histories/<workflow type>/<case>-<label>.json), shared by
the replay test that replays them and the recorder that writes them.

A file holds `WorkflowHistory.to_json()`: the same JSON the Temporal Web UI and
`temporal workflow show --output json` download, so a history of a production run can be dropped in
beside the recorded ones. Its workflow id is the file's stem; its type is read from the history."""

from __future__ import annotations

from pathlib import Path

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from worker.interceptors import SettleInterceptor
from worker.main import WORKFLOWS

HISTORIES_DIR = Path(__file__).resolve().parent


def history_files(root: Path = HISTORIES_DIR) -> list[Path]:
    return sorted(root.glob("*/*.json"))


def load_history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def workflow_type_of(history: WorkflowHistory) -> str:
    first = history.events[0]
    assert first.HasField("workflow_execution_started_event_attributes"), f"{history.workflow_id}: not a history from its start"
    return first.workflow_execution_started_event_attributes.workflow_type.name


def workflow_type_name(cls: type) -> str:
    """The name a workflow class is registered under (`@workflow.defn(name=...)` or its class name)."""
    return workflow._Definition.must_from_class(cls).name


def write_history(history: WorkflowHistory, *, case: str, label: str, root: Path = HISTORIES_DIR) -> Path:
    path = root / workflow_type_of(history) / f"{case}-{label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(history.to_json() + "\n")
    return path


def replayer() -> Replayer:
    """What the worker registers, as the worker registers it: its workflows and interceptors."""
    return Replayer(workflows=WORKFLOWS, interceptors=[SettleInterceptor()])
