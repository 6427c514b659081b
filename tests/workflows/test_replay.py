"""Every committed workflow history (tests/histories/) replays on today's workflow code, as the
worker registers it: a change that would break a running workflow fails here, not in production.
No stack: the Replayer needs no server. Recording histories: scripts/record_histories; the rules
for changing a workflow: README.md, "Contributing: changing a workflow"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.histories.store import HISTORIES_DIR, history_files, load_history, replayer, workflow_type_name, workflow_type_of
from worker.main import WORKFLOWS

HISTORIES = history_files()


def test_every_workflow_type_of_the_worker_has_a_committed_history():
    recorded = {workflow_type_of(load_history(path)) for path in HISTORIES}
    registered = {workflow_type_name(cls) for cls in WORKFLOWS}
    missing = registered - recorded
    assert not missing, f"no committed history for {sorted(missing)}: add a case to tests/histories/record_histories.py and run scripts/record_histories"
    # A history of a type the worker no longer registers could not replay; it belongs to code that is gone.
    assert recorded <= registered, f"histories of unregistered workflow types: {sorted(recorded - registered)}"


def test_each_history_sits_in_the_folder_of_its_type():
    misplaced = [path.relative_to(HISTORIES_DIR).as_posix() for path in HISTORIES if path.parent.name != workflow_type_of(load_history(path))]
    assert not misplaced, misplaced


@pytest.mark.parametrize("path", HISTORIES, ids=lambda path: path.relative_to(HISTORIES_DIR).as_posix())
async def test_history_replays(path: Path):
    # Raises (and fails the test) on non-determinism: the code issues other commands than the history holds.
    await replayer().replay_workflow(load_history(path))
