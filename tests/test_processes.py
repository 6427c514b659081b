"""Clear errors, not tracebacks, when something cannot start."""

import socket
import subprocess
import sys

import pytest

from cli.processes import StackError, free_port, pick_port, port_is_free, require_free, spawn, stop_pid


def test_taken_port_is_refused_with_a_clear_message():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free(port)
        with pytest.raises(StackError, match=f"port {port} for anvil is taken"):
            require_free(port, "anvil")
        # A service whose old port is taken moves to a free one instead of failing.
        assert pick_port(port) != port


def test_missing_binary_is_a_clear_error(tmp_path):
    with pytest.raises(StackError, match="run the setup step"):
        spawn([str(tmp_path / "no-such-binary")], log_path=tmp_path / "log")


def test_binary_that_will_not_run_is_a_clear_error(tmp_path):
    not_executable = tmp_path / "tool"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(StackError, match="cannot run"):
        spawn([str(not_executable)], log_path=tmp_path / "log")


def test_stop_pid_stops_only_that_process(tmp_path):
    process = spawn([sys.executable, "-c", "import time; time.sleep(60)"], log_path=tmp_path / "log")
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert stop_pid(process.pid, timeout_s=5) is True
        assert process.poll() is not None
        assert bystander.poll() is None
        assert stop_pid(process.pid) is False
    finally:
        bystander.kill()
        bystander.wait()


def test_free_port_is_free():
    assert port_is_free(free_port())
