"""The PostgreSQL store against the reference model: random sequences of accounts and
transfers (chains failing midway, pending/post/void, partial posts, repeats with the same and
other fields, limit breaches) give the same results, balances and transfers.

Steps marked `grouped_with_previous` are sent concurrently, so the group commit merges them
into one transaction; the model plays them one after another in the same order. Each example
has its own ledger and ids. Timeouts are 0 or an hour: the database's clock decides expiry,
which the pure engine's test covers.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db import ledger_store
from db.ledger_invariants import check_ledger_invariants
from db.ledger_store import LedgerStore
from tests.domain.ledger_model import LedgerModel, scenarios, stored_transfer_view


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_store_matches_the_reference_model(db_pool, data):
    prefix = f"prop-{uuid.uuid4().hex[:12]}/"
    scenario = data.draw(scenarios(prefix, timeouts=(0, 0, 0, 3600), with_time=False, steps_max=6))
    # 1: every caller's batch in a group is written by its own statement (while the engine
    # goes on with the next); the default merges small ones into one statement.
    statement_transfers_min = data.draw(st.sampled_from([1, ledger_store._STATEMENT_TRANSFERS_MIN]))
    default_statement_transfers_min = ledger_store._STATEMENT_TRANSFERS_MIN
    ledger_store._STATEMENT_TRANSFERS_MIN = statement_transfers_min
    model = LedgerModel()
    store = LedgerStore(db_pool)
    try:
        assert await store.create_accounts(scenario.accounts) == model.create_accounts(scenario.accounts)

        index = 0
        while index < len(scenario.steps):
            group = [scenario.steps[index]]
            index += 1
            while index < len(scenario.steps) and scenario.steps[index].grouped_with_previous:
                group.append(scenario.steps[index])
                index += 1
            now = datetime.now(UTC)
            expected = [model.create_transfers(step.transfers, now) for step in group]
            actual = await asyncio.gather(*(store.create_transfers(step.transfers) for step in group))
            assert actual == expected, [step.transfers for step in group]

        account_ids = list(model.accounts)
        accounts = await store.lookup_accounts(account_ids)
        assert {account.id: account.balances for account in accounts} == model.balances()

        stored = {}
        for transfer_id in model.transfer_view():
            transfer = await store.get_transfer(transfer_id)
            assert transfer is not None, transfer_id
            stored[transfer_id] = stored_transfer_view(transfer)
        assert stored == model.transfer_view()
        # Nothing more than the model's transfers was written.
        rows = await db_pool.fetch(
            "SELECT id FROM ledger_transfers WHERE debit_account_id = ANY($1::text[]) OR credit_account_id = ANY($1::text[])",
            account_ids,
        )
        assert {row["id"] for row in rows} == set(stored)

        for ledger in {account.ledger for account in accounts}:
            assert await check_ledger_invariants(db_pool, ledger=ledger) == []
    finally:
        ledger_store._STATEMENT_TRANSFERS_MIN = default_statement_transfers_min
        await store.close()
