"""Starting, probing and stopping the local stack's processes, by pid, on free ports."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable


class StackError(Exception):
    """Something in the local stack could not start or stop; the message says what to do."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pick_port(preferred: int | None) -> int:
    """The port a service had before when it is free again (stable URLs), else a fresh one."""
    if preferred and port_is_free(preferred):
        return preferred
    return free_port()


def require_free(port: int, what: str) -> None:
    if not port_is_free(port):
        raise StackError(f"port {port} for {what} is taken by another process; free it or run `settle down`")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return status != "Z"


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise StackError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def spawn(
    args: list[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: int | None = None,
    group: int | None = None,
) -> subprocess.Popen:
    """Start a long-lived process in its own session, output to a log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    executable = Path(args[0])
    if executable.is_absolute() and not executable.exists():
        raise StackError(f"{executable} is missing; run the setup step (scripts/bootstrap) first")
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
                user=user,
                group=group,
                extra_groups=[] if user is not None else None,
            )
        except OSError as error:
            raise StackError(f"cannot run {args[0]}: {error}") from error


def ensure_started(process: subprocess.Popen, *, what: str, log_path: Path) -> None:
    if process.poll() is not None:
        raise StackError(f"{what} exited with code {process.returncode} at start; see {log_path}:\n{tail(log_path)}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_pid(pid: int | None, *, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> bool:
    """Signal one process we started and wait for it to exit; SIGKILL if it will not. True if it was running."""
    if not pid_alive(pid):
        return False
    assert pid is not None
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    wait_until(lambda: (_reap(pid), not pid_alive(pid))[1], timeout_s=5, what=f"pid {pid} to exit after SIGKILL")
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
