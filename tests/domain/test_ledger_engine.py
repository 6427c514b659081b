"""The pure ledger engine: worked examples, then random sequences against the reference model."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from domain.ledger import (
    AMOUNT_MAX,
    BALANCE_MAX,
    Account,
    AccountCode,
    AccountFlags,
    BalanceDelta,
    CreateAccountResult,
    CreateTransferResult,
    LedgerBatch,
    LedgerState,
    NewAccount,
    NewTransfer,
    PendingStatus,
    TransferFlags,
    create_accounts,
)
from tests.domain.ledger_model import LedgerModel, scenarios, stored_transfer_view

R = CreateTransferResult
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
USDC = "evm:31337:usdc"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _state(*accounts: NewAccount) -> LedgerState:
    state = LedgerState()
    results, created = create_accounts(state.accounts, list(accounts))
    assert set(results) == {CreateAccountResult.OK}
    state.accounts.update({account.id: account for account in created})
    return state


def _account(account_id: str, flags: AccountFlags = AccountFlags.NONE, *, ledger: str = "t1", asset: str = USDC) -> NewAccount:
    return NewAccount(id=account_id, ledger=ledger, asset=asset, code=AccountCode.TREASURY, flags=flags)


def _transfer(transfer_id: str, debit: str, credit: str, amount: int | None, flags: TransferFlags = TransferFlags.NONE, **fields) -> NewTransfer:
    return NewTransfer(id=transfer_id, debit_account_id=debit, credit_account_id=credit, amount=amount, ledger="t1", asset=USDC, code="test", flags=flags, **fields)


def _post(state: LedgerState, transfers: list[NewTransfer], now: datetime = T0) -> list[CreateTransferResult]:
    batch = LedgerBatch(state, now=now)
    results = batch.create_transfers(transfers)
    state.apply(batch.changes())
    return results


def _balances(state: LedgerState, account_id: str) -> tuple[int, int, int, int]:
    return state.accounts[account_id].balances


# ------------------------------------------------------------------------------- examples
def test_a_transfer_moves_posted_balances_and_a_repeat_changes_nothing():
    state = _state(_account("a"), _account("b"))
    assert _post(state, [_transfer("pi_1/settle/gross", "a", "b", 100)]) == [R.OK]
    assert _post(state, [_transfer("pi_1/settle/gross", "a", "b", 100)]) == [R.EXISTS]
    assert _post(state, [_transfer("pi_1/settle/gross", "a", "b", 101)]) == [R.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert _post(state, [_transfer("pi_1/settle/gross", "b", "a", 100)]) == [R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID]
    assert _post(state, [_transfer("pi_1/settle/gross", "a", "b", 100, metadata={"x": 1})]) == [R.EXISTS_WITH_DIFFERENT_METADATA]
    assert _balances(state, "a") == (0, 100, 0, 0)
    assert _balances(state, "b") == (0, 0, 0, 100)
    assert state.transfers["pi_1/settle/gross"].amount == 100


def test_input_problems_are_results_not_exceptions():
    state = _state(_account("a"), _account("b"), _account("c", ledger="t2"), _account("d", asset="evm:1:usdt"))
    results = _post(
        state,
        [
            _transfer("", "a", "b", 1),
            _transfer("x", "a", "a", 1),
            _transfer("x", "a", "b", 0),
            _transfer("x", "a", "b", AMOUNT_MAX + 1),
            _transfer("x", "a", "missing", 1),
            _transfer("x", "missing", "b", 1),
            _transfer("x", "a", "c", 1),
            _transfer("x", "a", "d", 1),
            _transfer("x", "a", "b", 1, metadata={"rate": 1.5}),
            _transfer("x", "a", "b", 1, timeout_s=10),
            _transfer("x", "a", "b", 1, flags=TransferFlags.PENDING | TransferFlags.VOID_PENDING),
            NewTransfer(id="x", debit_account_id="a", credit_account_id="b", amount=1, ledger="t2", asset=USDC, code="c"),
        ],
    )
    assert results == [
        R.ID_MUST_NOT_BE_EMPTY,
        R.ACCOUNTS_MUST_BE_DIFFERENT,
        R.AMOUNT_MUST_NOT_BE_ZERO,
        R.AMOUNT_OUT_OF_RANGE,
        R.CREDIT_ACCOUNT_NOT_FOUND,
        R.DEBIT_ACCOUNT_NOT_FOUND,
        R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
        R.ACCOUNTS_MUST_HAVE_THE_SAME_ASSET,
        R.METADATA_INVALID,
        R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
        R.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
    ]
    assert state.transfers == {}


def test_wrong_types_are_a_programmers_error():
    with pytest.raises(TypeError):
        NewTransfer(id="x", debit_account_id="a", credit_account_id="b", amount=True)
    with pytest.raises(TypeError):
        NewTransfer(id="x", debit_account_id="a", credit_account_id="b", amount=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        NewTransfer(id="x", debit_account_id="a", credit_account_id="b", amount=1, flags=2)  # type: ignore[arg-type]


def test_a_linked_chain_failing_midway_applies_nothing():
    state = _state(_account("customer", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS), _account("merchant"), _account("fees"))
    assert _post(state, [_transfer("fund", "merchant", "customer", 50)]) == [R.OK]
    results = _post(
        state,
        [
            _transfer("pi_1/fee", "customer", "fees", 10, TransferFlags.LINKED),
            _transfer("pi_1/net", "customer", "merchant", 60, TransferFlags.LINKED),
            _transfer("pi_1/tip", "customer", "merchant", 1),
            _transfer("other", "merchant", "fees", 5),
        ],
    )
    assert results == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS, R.LINKED_EVENT_FAILED, R.OK]
    assert "pi_1/fee" not in state.transfers
    assert _balances(state, "customer") == (0, 0, 0, 50)
    assert _balances(state, "fees") == (0, 0, 0, 5)


def test_a_chain_left_open_at_the_end_of_the_batch_fails():
    state = _state(_account("a"), _account("b"))
    results = _post(state, [_transfer("1", "a", "b", 1), _transfer("2", "a", "b", 1, TransferFlags.LINKED), _transfer("3", "a", "b", 1, TransferFlags.LINKED)])
    assert results == [R.OK, R.LINKED_EVENT_FAILED, R.LINKED_EVENT_CHAIN_OPEN]
    assert set(state.transfers) == {"1"}


def test_a_retried_chain_reports_exists_for_each_transfer():
    state = _state(_account("a"), _account("b"))
    chain = [_transfer("1", "a", "b", 1, TransferFlags.LINKED), _transfer("2", "a", "b", 2)]
    assert _post(state, chain) == [R.OK, R.OK]
    assert _post(state, chain) == [R.EXISTS, R.EXISTS]
    assert _balances(state, "b") == (0, 0, 0, 3)


def test_pending_then_partial_post_releases_the_rest():
    state = _state(_account("merchant"), _account("in_flight"))
    assert _post(state, [_transfer("payout_1/reserve", "merchant", "in_flight", 100, TransferFlags.PENDING, timeout_s=60)]) == [R.OK]
    assert _balances(state, "merchant") == (100, 0, 0, 0)
    post = NewTransfer(id="payout_1/post", pending_id="payout_1/reserve", amount=70, flags=TransferFlags.POST_PENDING)
    assert _post(state, [post]) == [R.OK]
    assert _balances(state, "merchant") == (0, 70, 0, 0)
    assert _balances(state, "in_flight") == (0, 0, 0, 70)
    assert state.transfers["payout_1/reserve"].pending_status is PendingStatus.POSTED
    assert state.transfers["payout_1/post"].debit_account_id == "merchant"
    assert _post(state, [post]) == [R.EXISTS]
    assert _post(state, [NewTransfer(id="payout_1/post2", pending_id="payout_1/reserve", flags=TransferFlags.POST_PENDING)]) == [R.PENDING_TRANSFER_ALREADY_POSTED]
    assert _post(state, [NewTransfer(id="payout_1/void", pending_id="payout_1/reserve", flags=TransferFlags.VOID_PENDING)]) == [R.PENDING_TRANSFER_ALREADY_POSTED]


def test_void_and_post_checks_against_the_pending_transfer():
    state = _state(_account("a"), _account("b"), _account("c"))
    assert _post(state, [_transfer("p", "a", "b", 100, TransferFlags.PENDING), _transfer("plain", "a", "b", 1)]) == [R.OK, R.OK]
    void = TransferFlags.VOID_PENDING
    post = TransferFlags.POST_PENDING
    assert _post(
        state,
        [
            NewTransfer(id="v", pending_id="nope", flags=void),
            NewTransfer(id="v", pending_id="plain", flags=void),
            NewTransfer(id="v", pending_id="p", flags=void, credit_account_id="c"),
            NewTransfer(id="v", pending_id="p", flags=void, amount=50),
            NewTransfer(id="v", pending_id="p", flags=post, amount=101),
            NewTransfer(id="v", pending_id="p", flags=void, amount=100),
            NewTransfer(id="w", pending_id="p", flags=void),
            NewTransfer(id="v", pending_id="p", flags=post),
        ],
    ) == [
        R.PENDING_TRANSFER_NOT_FOUND,
        R.PENDING_TRANSFER_NOT_PENDING,
        R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID,
        R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT,
        R.EXCEEDS_PENDING_TRANSFER_AMOUNT,
        R.OK,
        R.PENDING_TRANSFER_ALREADY_VOIDED,
        R.EXISTS_WITH_DIFFERENT_FLAGS,
    ]
    assert _balances(state, "a") == (0, 1, 0, 0)


def test_an_expired_pending_transfer_cannot_be_posted_and_expiry_releases_it():
    state = _state(_account("a"), _account("b"))
    assert _post(state, [_transfer("p", "a", "b", 10, TransferFlags.PENDING, timeout_s=30)]) == [R.OK]
    later = T0 + timedelta(seconds=30)
    assert _post(state, [NewTransfer(id="post", pending_id="p", flags=TransferFlags.POST_PENDING)], now=later) == [R.PENDING_TRANSFER_EXPIRED]
    batch = LedgerBatch(state, now=T0 + timedelta(seconds=29))
    assert batch.expire_pending_transfers(["p"]) == []
    batch = LedgerBatch(state, now=later)
    assert batch.expire_pending_transfers(["p"]) == ["p"]
    state.apply(batch.changes())
    assert _balances(state, "a") == (0, 0, 0, 0)
    assert state.transfers["p"].pending_status is PendingStatus.EXPIRED


def test_flags_limit_balances_and_closed_accounts_refuse_transfers():
    state = _state(
        _account("dmnec", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        _account("cmned", AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
        _account("open"),
        _account("closed", AccountFlags.CLOSED),
    )
    assert _post(
        state,
        [
            _transfer("1", "dmnec", "open", 1),
            _transfer("2", "open", "dmnec", 5),
            _transfer("3", "dmnec", "open", 3, TransferFlags.PENDING),
            _transfer("4", "dmnec", "open", 3),
            _transfer("5", "open", "cmned", 1),
            _transfer("6", "open", "closed", 1),
            _transfer("7", "closed", "open", 1),
        ],
    ) == [R.EXCEEDS_CREDITS, R.OK, R.OK, R.EXCEEDS_CREDITS, R.EXCEEDS_DEBITS, R.ACCOUNT_CLOSED, R.ACCOUNT_CLOSED]


def test_balances_cannot_overflow_numeric_78():
    state = _state(_account("a"), _account("b"))
    per_transfer = AMOUNT_MAX
    count = BALANCE_MAX // per_transfer
    results = _post(state, [_transfer(f"t{i}", "a", "b", per_transfer) for i in range(count + 1)])
    assert results == [R.OK] * count + [R.OVERFLOWS_DEBITS]
    assert state.accounts["a"].debits_posted == count * per_transfer


def test_several_callers_in_one_batch_see_each_other_and_yield_one_set_of_changes():
    state = _state(_account("a"), _account("fees"))
    batch = LedgerBatch(state, now=T0)
    assert batch.create_transfers([_transfer("x", "a", "fees", 2)]) == [R.OK]
    assert batch.create_transfers([_transfer("x", "a", "fees", 2), _transfer("y", "a", "fees", 3, TransferFlags.LINKED)]) == [R.EXISTS, R.LINKED_EVENT_CHAIN_OPEN]
    assert batch.create_transfers([_transfer("p", "a", "fees", 4, TransferFlags.PENDING), NewTransfer(id="q", pending_id="p", flags=TransferFlags.POST_PENDING, amount=1)]) == [R.OK, R.OK]
    changes = batch.changes()
    assert [transfer.id for transfer in changes.transfers_new] == ["x", "p", "q"]
    assert changes.transfers_new[1].pending_status is PendingStatus.POSTED
    assert changes.pending_status_changes == {}
    assert changes.balance_deltas == {"a": BalanceDelta(0, 3, 0, 0), "fees": BalanceDelta(0, 0, 0, 3)}
    # The state the batch read from is untouched until the changes are applied.
    assert state.transfers == {}


def test_create_accounts_results():
    existing = {"a": Account.from_new(_account("a"))}
    results, created = create_accounts(
        existing,
        [
            _account("a"),
            _account("a", ledger="t2"),
            _account("a", AccountFlags.CLOSED),
            NewAccount(id="a", ledger="t1", asset=USDC, code=AccountCode.ROUNDING),
            _account("b"),
            _account("b", asset="evm:1:usdt"),
            _account(""),
            _account("c", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
        ],
    )
    A = CreateAccountResult
    assert results == [
        A.EXISTS,
        A.EXISTS_WITH_DIFFERENT_LEDGER,
        A.EXISTS_WITH_DIFFERENT_FLAGS,
        A.EXISTS_WITH_DIFFERENT_CODE,
        A.OK,
        A.EXISTS_WITH_DIFFERENT_ASSET,
        A.ID_MUST_NOT_BE_EMPTY,
        A.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
    ]
    assert [account.id for account in created] == ["b"]


# ------------------------------------------------------------------------ against the model
def run_engine_and_model(scenario):
    """Play a scenario on the engine (grouped steps share one LedgerBatch) and on the model."""
    model = LedgerModel()
    state = LedgerState()
    model_account_results = model.create_accounts(scenario.accounts)
    engine_account_results, created = create_accounts(state.accounts, scenario.accounts)
    assert engine_account_results == model_account_results
    state.accounts.update({account.id: account for account in created})

    now = T0
    index = 0
    while index < len(scenario.steps):
        group = [scenario.steps[index]]
        index += 1
        while index < len(scenario.steps) and scenario.steps[index].grouped_with_previous:
            group.append(scenario.steps[index])
            index += 1
        now += timedelta(seconds=group[0].advance_s)
        batch = LedgerBatch(state, now=now)
        for step in group:
            expected = model.create_transfers(step.transfers, now)
            assert batch.create_transfers(step.transfers) == expected, step.transfers
        if group[-1].expire_after:
            assert sorted(batch.expire_pending_transfers(list(state.transfers) + [t.id for t in batch.changes().transfers_new])) == sorted(model.expire(now))
        state.apply(batch.changes())
        assert {i: a.balances for i, a in state.accounts.items()} == model.balances()
    return state, model


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios("p/"))
def test_engine_matches_the_reference_model(scenario):
    state, model = run_engine_and_model(scenario)
    assert {i: stored_transfer_view(t) for i, t in state.transfers.items()} == model.transfer_view()
    # Double entry: every ledger and asset balances.
    totals: dict[tuple[str, str], list[int]] = {}
    for account in state.accounts.values():
        total = totals.setdefault((account.ledger, account.asset), [0, 0, 0, 0])
        for position, value in enumerate(account.balances):
            total[position] += value
    for debits_pending, debits_posted, credits_pending, credits_posted in totals.values():
        assert (debits_pending, debits_posted) == (credits_pending, credits_posted)


# --------------------------------------------------------------------------- no float, ever
LEDGER_SOURCES = sorted([*PROJECT_ROOT.glob("domain/ledger*.py"), *PROJECT_ROOT.glob("db/ledger*.py")])


def test_no_float_touches_the_ledger_code():
    assert {path.name for path in LEDGER_SOURCES} >= {"ledger.py", "ledger_store.py", "ledger_invariants.py"}
    for path in LEDGER_SOURCES:
        source = path.read_text()
        # A grep first: the word itself, anywhere (code, comments, strings).
        hits = [f"{path.name}:{number}: {line.strip()}" for number, line in enumerate(source.splitlines(), 1) if re.search(r"\bfloat\b", line)]
        assert not hits, hits
        # Then what a grep cannot see: float literals, true division, Decimal or math.
        for node in ast.walk(ast.parse(source, filename=str(path))):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            assert not (isinstance(node, ast.Constant) and type(node.value) in (type(0.5), complex)), f"{where}: a float literal"
            assert not isinstance(node, ast.Div), f"{where}: true division makes floats"
            assert not (isinstance(node, ast.Name) and node.id in ("Decimal", "math", "fractions")), f"{where}: {node.id}"
            assert not (isinstance(node, ast.Attribute) and node.attr in ("Decimal", "fromtimestamp", "timestamp")), f"{where}: {node.attr}"
