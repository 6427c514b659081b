"""A plain reference model of the ledger's rules, written apart from `domain.ledger` on purpose.

One transfer at a time over dicts of plain values; a linked chain is made all-or-nothing by
snapshotting the whole state before it and restoring the snapshot when it fails. Slow and
obvious: the property tests compare the real engine and the PostgreSQL store against it.
It shares only the input types and result names with the implementation, not its code.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta

from domain.ledger import CreateAccountResult, CreateTransferResult, NewAccount, NewTransfer

R = CreateTransferResult
A = CreateAccountResult

AMOUNT_LIMIT = 2**256 - 1
BALANCE_LIMIT = 10**78 - 1
TIMEOUT_LIMIT_S = 10 * 366 * 24 * 3600


def stored_transfer_view(transfer) -> tuple:
    """A stored `domain.ledger.Transfer` in the shape of `LedgerModel.transfer_view()`'s values,
    so the engine's and the store's transfers compare with the model's."""
    return (
        transfer.debit_account_id,
        transfer.credit_account_id,
        transfer.amount,
        transfer.pending_id,
        transfer.ledger,
        transfer.asset,
        transfer.code,
        int(transfer.flags),
        transfer.timeout_s,
        json.dumps(transfer.metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        None if transfer.pending_status is None else str(transfer.pending_status),
    )


def _bad_text(value, limit):
    """'empty', 'bad' or None."""
    if not value:
        return "empty"
    if len(value) > limit or "\x00" in value:
        return "bad"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "bad"
    return None


def _json_ok(value, depth=0):
    if depth > 8:
        return False
    if value is None or type(value) is bool or type(value) is int:
        return True
    if type(value) is str:
        return "\x00" not in value
    if isinstance(value, dict):
        return all(type(k) is str and "\x00" not in k and _json_ok(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_json_ok(v, depth + 1) for v in value)
    return False


def _metadata_key(metadata):
    """A comparable form of metadata, or None when it is not acceptable."""
    metadata = {} if metadata is None else dict(metadata)
    if not _json_ok(metadata):
        return None
    text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        if len(text.encode("utf-8")) > 4096:
            return None
    except UnicodeEncodeError:
        return None
    return text


class LedgerModel:
    def __init__(self):
        # id -> dict(ledger, asset, code, owner, flags, dp, dpo, cp, cpo)
        self.accounts = {}
        # id -> dict(dr, cr, amount, pending_id, ledger, asset, code, kind, timeout, meta, expires, status)
        self.transfers = {}

    # ------------------------------------------------------------------ accounts
    def create_accounts(self, batch: list[NewAccount]) -> list[CreateAccountResult]:
        return [self._create_account(new) for new in batch]

    def _create_account(self, new):
        for value, limit, empty, bad in (
            (new.id, 256, A.ID_MUST_NOT_BE_EMPTY, A.ID_INVALID),
            (new.ledger, 128, A.LEDGER_MUST_NOT_BE_EMPTY, A.LEDGER_INVALID),
            (new.asset, 128, A.ASSET_MUST_NOT_BE_EMPTY, A.ASSET_INVALID),
        ):
            problem = _bad_text(value, limit)
            if problem == "empty":
                return empty
            if problem == "bad":
                return bad
        if new.owner is not None and _bad_text(new.owner, 256):
            return A.OWNER_INVALID
        flags = int(new.flags)
        if flags & 1 and flags & 2:
            return A.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        old = self.accounts.get(new.id)
        if old is not None:
            for name, value, result in (
                ("ledger", new.ledger, A.EXISTS_WITH_DIFFERENT_LEDGER),
                ("asset", new.asset, A.EXISTS_WITH_DIFFERENT_ASSET),
                ("code", str(new.code), A.EXISTS_WITH_DIFFERENT_CODE),
                ("owner", new.owner, A.EXISTS_WITH_DIFFERENT_OWNER),
                ("flags", flags, A.EXISTS_WITH_DIFFERENT_FLAGS),
            ):
                if old[name] != value:
                    return result
            return A.EXISTS
        self.accounts[new.id] = dict(
            ledger=new.ledger, asset=new.asset, code=str(new.code), owner=new.owner, flags=flags, dp=0, dpo=0, cp=0, cpo=0
        )
        return A.OK

    # ------------------------------------------------------------------ transfers
    def create_transfers(self, batch: list[NewTransfer], now: datetime) -> list[CreateTransferResult]:
        # Cut the batch into chains first: a chain ends at the first transfer without `linked`,
        # or at the end of the batch (then it is open).
        chains = []
        current = []
        for new in batch:
            current.append(new)
            if not (int(new.flags) & 1):
                chains.append((current, False))
                current = []
        if current:
            chains.append((current, True))

        results = []
        for chain, is_open in chains:
            if len(chain) == 1 and not is_open:
                results.append(self._one(chain[0], now))
                continue
            snapshot = (copy.deepcopy(self.accounts), copy.deepcopy(self.transfers))
            chain_results = []
            failed_at = None
            for position, new in enumerate(chain):
                if is_open and position == len(chain) - 1:
                    failed_at = position if failed_at is None else failed_at
                    chain_results.append(R.LINKED_EVENT_CHAIN_OPEN)
                    break
                if failed_at is not None:
                    chain_results.append(R.LINKED_EVENT_FAILED)
                    continue
                result = self._one(new, now)
                chain_results.append(result)
                if result not in (R.OK, R.EXISTS):
                    failed_at = position
            if failed_at is not None:
                self.accounts, self.transfers = snapshot
                chain_results = [
                    result if position == failed_at or result is R.LINKED_EVENT_CHAIN_OPEN else R.LINKED_EVENT_FAILED
                    for position, result in enumerate(chain_results)
                ]
            results.extend(chain_results)
        return results

    def _one(self, new: NewTransfer, now: datetime) -> CreateTransferResult:
        flags = int(new.flags)
        is_pending, is_post, is_void = bool(flags & 2), bool(flags & 4), bool(flags & 8)

        problem = _bad_text(new.id, 256)
        if problem:
            return R.ID_MUST_NOT_BE_EMPTY if problem == "empty" else R.ID_INVALID
        if is_pending + is_post + is_void > 1:
            return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if is_post or is_void:
            if not new.pending_id:
                return R.PENDING_ID_MUST_NOT_BE_EMPTY
            if _bad_text(new.pending_id, 256):
                return R.PENDING_ID_INVALID
            if new.pending_id == new.id:
                return R.PENDING_ID_MUST_BE_DIFFERENT
        elif new.pending_id is not None:
            return R.PENDING_ID_MUST_BE_EMPTY
        if new.timeout_s < 0 or new.timeout_s > TIMEOUT_LIMIT_S:
            return R.TIMEOUT_OUT_OF_RANGE
        if new.timeout_s != 0 and not is_pending:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if new.amount == 0 or (new.amount is None and not (is_post or is_void)):
            return R.AMOUNT_MUST_NOT_BE_ZERO
        if new.amount is not None and (new.amount < 0 or new.amount > AMOUNT_LIMIT):
            return R.AMOUNT_OUT_OF_RANGE
        meta = _metadata_key(new.metadata)
        if meta is None:
            return R.METADATA_INVALID
        if is_post or is_void:
            return self._post_or_void(new, now, is_post, meta)

        for value, limit, bad in (
            (new.debit_account_id, 256, R.DEBIT_ACCOUNT_ID_INVALID),
            (new.credit_account_id, 256, R.CREDIT_ACCOUNT_ID_INVALID),
        ):
            if _bad_text(value, limit):
                return bad
        if new.debit_account_id == new.credit_account_id:
            return R.ACCOUNTS_MUST_BE_DIFFERENT
        for value, empty, bad in (
            (new.ledger, R.LEDGER_MUST_NOT_BE_EMPTY, R.LEDGER_INVALID),
            (new.asset, R.ASSET_MUST_NOT_BE_EMPTY, R.ASSET_INVALID),
            (new.code, R.CODE_MUST_NOT_BE_EMPTY, R.CODE_INVALID),
        ):
            problem = _bad_text(value, 128)
            if problem:
                return empty if problem == "empty" else bad

        wanted = dict(
            kind=flags & ~1, dr=new.debit_account_id, cr=new.credit_account_id, amount=new.amount, pending_id=None,
            ledger=new.ledger, asset=new.asset, code=new.code, timeout=new.timeout_s, meta=meta,
        )
        if new.id in self.transfers:
            return self._compare(self.transfers[new.id], wanted)
        dr = self.accounts.get(new.debit_account_id)
        if dr is None:
            return R.DEBIT_ACCOUNT_NOT_FOUND
        cr = self.accounts.get(new.credit_account_id)
        if cr is None:
            return R.CREDIT_ACCOUNT_NOT_FOUND
        if dr["ledger"] != cr["ledger"]:
            return R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if dr["asset"] != cr["asset"]:
            return R.ACCOUNTS_MUST_HAVE_THE_SAME_ASSET
        if new.ledger != dr["ledger"]:
            return R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
        if new.asset != dr["asset"]:
            return R.TRANSFER_MUST_HAVE_THE_SAME_ASSET_AS_ACCOUNTS
        if dr["flags"] & 4 or cr["flags"] & 4:
            return R.ACCOUNT_CLOSED
        amount = new.amount
        if dr["dp"] + dr["dpo"] + amount > BALANCE_LIMIT:
            return R.OVERFLOWS_DEBITS
        if cr["cp"] + cr["cpo"] + amount > BALANCE_LIMIT:
            return R.OVERFLOWS_CREDITS
        if dr["flags"] & 1 and dr["dp"] + dr["dpo"] + amount > dr["cpo"]:
            return R.EXCEEDS_CREDITS
        if cr["flags"] & 2 and cr["cp"] + cr["cpo"] + amount > cr["dpo"]:
            return R.EXCEEDS_DEBITS

        if is_pending:
            dr["dp"] += amount
            cr["cp"] += amount
        else:
            dr["dpo"] += amount
            cr["cpo"] += amount
        self.transfers[new.id] = dict(
            wanted,
            kind=flags,
            expires=now + timedelta(seconds=new.timeout_s) if is_pending and new.timeout_s > 0 else None,
            status="pending" if is_pending else None,
        )
        return R.OK

    def _post_or_void(self, new, now, is_post, meta):
        for value, limit, bad in (
            (new.debit_account_id, 256, R.DEBIT_ACCOUNT_ID_INVALID),
            (new.credit_account_id, 256, R.CREDIT_ACCOUNT_ID_INVALID),
            (new.ledger, 128, R.LEDGER_INVALID),
            (new.asset, 128, R.ASSET_INVALID),
            (new.code, 128, R.CODE_INVALID),
        ):
            if value != "" and _bad_text(value, limit):
                return bad
        p = self.transfers.get(new.pending_id)
        if p is None:
            return R.PENDING_TRANSFER_NOT_FOUND
        if p["status"] is None:
            return R.PENDING_TRANSFER_NOT_PENDING
        for given, own, result in (
            (new.debit_account_id, p["dr"], R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID),
            (new.credit_account_id, p["cr"], R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID),
            (new.ledger, p["ledger"], R.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER),
            (new.asset, p["asset"], R.PENDING_TRANSFER_HAS_DIFFERENT_ASSET),
            (new.code, p["code"], R.PENDING_TRANSFER_HAS_DIFFERENT_CODE),
        ):
            if given != "" and given != own:
                return result
        amount = p["amount"] if new.amount is None else new.amount
        if amount > p["amount"]:
            return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
        if not is_post and amount != p["amount"]:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
        wanted = dict(
            kind=int(new.flags) & ~1, dr=p["dr"], cr=p["cr"], amount=amount, pending_id=new.pending_id,
            ledger=p["ledger"], asset=p["asset"], code=p["code"], timeout=new.timeout_s, meta=meta,
        )
        if new.id in self.transfers:
            return self._compare(self.transfers[new.id], wanted)
        if p["status"] == "posted":
            return R.PENDING_TRANSFER_ALREADY_POSTED
        if p["status"] == "voided":
            return R.PENDING_TRANSFER_ALREADY_VOIDED
        if p["status"] == "expired" or (p["expires"] is not None and now >= p["expires"]):
            return R.PENDING_TRANSFER_EXPIRED
        dr, cr = self.accounts[p["dr"]], self.accounts[p["cr"]]
        if is_post and (dr["flags"] & 4 or cr["flags"] & 4):
            return R.ACCOUNT_CLOSED
        dr["dp"] -= p["amount"]
        cr["cp"] -= p["amount"]
        if is_post:
            dr["dpo"] += amount
            cr["cpo"] += amount
            p["status"] = "posted"
        else:
            p["status"] = "voided"
        self.transfers[new.id] = dict(wanted, kind=int(new.flags), expires=None, status=None)
        return R.OK

    @staticmethod
    def _compare(old, wanted):
        checks = (
            ("kind", R.EXISTS_WITH_DIFFERENT_FLAGS),
            ("dr", R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID),
            ("cr", R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID),
            ("amount", R.EXISTS_WITH_DIFFERENT_AMOUNT),
            ("pending_id", R.EXISTS_WITH_DIFFERENT_PENDING_ID),
            ("ledger", R.EXISTS_WITH_DIFFERENT_LEDGER),
            ("asset", R.EXISTS_WITH_DIFFERENT_ASSET),
            ("code", R.EXISTS_WITH_DIFFERENT_CODE),
            ("timeout", R.EXISTS_WITH_DIFFERENT_TIMEOUT),
            ("meta", R.EXISTS_WITH_DIFFERENT_METADATA),
        )
        for name, result in checks:
            mine = old[name] & ~1 if name == "kind" else old[name]
            if mine != wanted[name]:
                return result
        return R.EXISTS

    # ------------------------------------------------------------------ expiry
    def expire(self, now: datetime) -> list[str]:
        expired = []
        for transfer_id, t in self.transfers.items():
            if t["status"] == "pending" and t["expires"] is not None and now >= t["expires"]:
                t["status"] = "expired"
                self.accounts[t["dr"]]["dp"] -= t["amount"]
                self.accounts[t["cr"]]["cp"] -= t["amount"]
                expired.append(transfer_id)
        return expired

    # ------------------------------------------------------------------ views
    def balances(self) -> dict[str, tuple[int, int, int, int]]:
        return {i: (a["dp"], a["dpo"], a["cp"], a["cpo"]) for i, a in self.accounts.items()}

    def transfer_view(self) -> dict[str, tuple]:
        """What a stored transfer must look like: comparable with the engine's and the store's rows."""
        return {
            i: (t["dr"], t["cr"], t["amount"], t["pending_id"], t["ledger"], t["asset"], t["code"], t["kind"], t["timeout"], t["meta"], t["status"])
            for i, t in self.transfers.items()
        }



# ---------------------------------------------------------------------- hypothesis scenarios
# Shared by the engine's and the store's property tests: small pools of ids, accounts and
# amounts, so that duplicates, chains, posts of the wrong pending and limit breaches are common.
from dataclasses import dataclass, replace  # noqa: E402

from hypothesis import strategies as st  # noqa: E402

from domain.ledger import AccountCode, AccountFlags, TransferFlags  # noqa: E402

ASSET = "evm:31337:usdc"
ASSET_OTHER = "evm:31337:usdt"
TRANSFER_IDS_COUNT = 10


@dataclass
class Step:
    transfers: list
    advance_s: int = 0
    expire_after: bool = False
    # Run in the same LedgerBatch as the step before it (the group commit's path).
    grouped_with_previous: bool = False


@dataclass
class Scenario:
    accounts: list
    steps: list


def fixed_accounts(prefix: str) -> list[NewAccount]:
    ledger, ledger_other = f"{prefix}L", f"{prefix}M"
    return [
        NewAccount(id=f"{prefix}a0", ledger=ledger, asset=ASSET, code=AccountCode.TREASURY),
        NewAccount(id=f"{prefix}a1", ledger=ledger, asset=ASSET, code=AccountCode.CUSTOMER_DEPOSITS, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS, owner="customer:1"),
        NewAccount(id=f"{prefix}a2", ledger=ledger, asset=ASSET, code=AccountCode.MERCHANT_AVAILABLE, flags=AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
        NewAccount(id=f"{prefix}a3", ledger=ledger, asset=ASSET, code=AccountCode.PLATFORM_FEES, flags=AccountFlags.CLOSED),
        NewAccount(id=f"{prefix}a4", ledger=ledger, asset=ASSET_OTHER, code=AccountCode.TREASURY),
        NewAccount(id=f"{prefix}a5", ledger=ledger_other, asset=ASSET, code=AccountCode.TREASURY),
        NewAccount(id=f"{prefix}a6", ledger=ledger, asset=ASSET, code=AccountCode.ROUNDING, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
    ]


def funding_transfers(prefix: str) -> list[NewTransfer]:
    """Credit the accounts whose flags limit debits (and debit the one limiting credits), so
    that later transfers can pass the limits as well as break them."""
    ledger = f"{prefix}L"
    return [
        NewTransfer(id=f"{prefix}f{i}", debit_account_id=f"{prefix}a{debit}", credit_account_id=f"{prefix}a{credit}", amount=100, ledger=ledger, asset=ASSET, code="funding")
        for i, (debit, credit) in enumerate([(0, 1), (0, 6), (2, 0)])
    ]


@st.composite
def extra_accounts(draw, prefix: str) -> list[NewAccount]:
    """More create_accounts calls: repeats of the fixed ones (same or other fields), new ones, bad ones."""
    ledger = f"{prefix}L"
    extras = []
    for _ in range(draw(st.integers(0, 5))):
        extras.append(
            NewAccount(
                id=draw(st.sampled_from([f"{prefix}a0", f"{prefix}a1", f"{prefix}a3", f"{prefix}a7", f"{prefix}a8", ""])),
                ledger=draw(st.sampled_from([ledger, ledger, f"{prefix}M", ""])),
                asset=draw(st.sampled_from([ASSET, ASSET, ASSET_OTHER, "a\x00b"])),
                code=draw(st.sampled_from([AccountCode.TREASURY, AccountCode.CUSTOMER_DEPOSITS, AccountCode.PLATFORM_FEES])),
                owner=draw(st.sampled_from([None, None, "customer:1", "x" * 300])),
                flags=draw(st.sampled_from([AccountFlags.NONE, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS, AccountFlags.CLOSED, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS])),
            )
        )
    return extras


def _rarely(draw, usual, unusual, *, percent: int):
    """`usual` most of the time, `unusual` in about `percent` % of draws."""
    return draw(unusual) if draw(st.integers(0, 99)) < percent else draw(usual)


AMOUNTS_ODD = st.sampled_from([None, 0, -1, 2**256 - 1, 2**256, 10**30])
METADATA = st.sampled_from([None, None, {}, {"order": "o_1"}, {"order": "o_2", "n": [1, 2, {"deep": True}]}])
METADATA_ODD = st.sampled_from([{"f": 0.5}, {"nul": "\x00"}, {"big": "x" * 5000}])


@st.composite
def new_transfers(draw, prefix: str, *, timeouts: list[int], history: list[NewTransfer]) -> NewTransfer:
    """Mostly well-formed transfers between accounts of one ledger and asset, with a few
    broken on purpose, so that both the rules and the happy path get exercised. `history`
    (what was drawn before) feeds repeats, and posts and voids of earlier pending transfers."""
    if history and draw(st.integers(0, 9)) == 0:
        again = draw(st.sampled_from(history))
        if draw(st.booleans()):
            return again
        return replace(again, amount=draw(st.sampled_from([None, 1, 7])), flags=again.flags ^ draw(st.sampled_from([TransferFlags.NONE, TransferFlags.LINKED])))
    pending_ids_seen = [t.id for t in history if t.flags & TransferFlags.PENDING]
    good = [f"{prefix}a{i}" for i in (0, 1, 2, 6)]
    accounts_good = st.sampled_from(good)
    accounts_odd = st.sampled_from([f"{prefix}a3", f"{prefix}a4", f"{prefix}a5", f"{prefix}a7", f"{prefix}missing", "", "bad\x00id"])
    transfer_ids = st.sampled_from([f"{prefix}t{i}" for i in range(TRANSFER_IDS_COUNT)])
    transfer_id = _rarely(draw, transfer_ids, st.sampled_from(["", "x" * 300]), percent=3)
    ledger = _rarely(draw, st.just(f"{prefix}L"), st.sampled_from([f"{prefix}M", ""]), percent=4)
    asset = _rarely(draw, st.just(ASSET), st.sampled_from([ASSET_OTHER, ""]), percent=4)
    code = _rarely(draw, st.sampled_from(["fee", "net"]), st.sampled_from(["", "c" * 200]), percent=4)
    metadata = _rarely(draw, METADATA, METADATA_ODD, percent=4)
    roll = draw(st.integers(0, 99))
    kind = "plain" if roll < 40 else "pending" if roll < 65 else "post" if roll < 85 else "void" if roll < 96 else "odd"
    flags = {
        "plain": TransferFlags.NONE,
        "pending": TransferFlags.PENDING,
        "post": TransferFlags.POST_PENDING,
        "void": TransferFlags.VOID_PENDING,
        "odd": draw(st.sampled_from([TransferFlags.PENDING | TransferFlags.POST_PENDING, TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING])),
    }[kind]
    if draw(st.integers(0, 3)) == 0:
        flags |= TransferFlags.LINKED
    if kind in ("post", "void", "odd"):
        pending_ids = st.sampled_from(pending_ids_seen) if pending_ids_seen and draw(st.integers(0, 9)) < 8 else transfer_ids
        pending_id = _rarely(draw, pending_ids, st.sampled_from([None, "", transfer_id, "bad\x00"]), percent=5)
        # A post or void mostly inherits the pending transfer's fields.
        inherit = draw(st.integers(0, 9)) < 7
        amount_roll = draw(st.integers(0, 9))
        return NewTransfer(
            id=transfer_id,
            debit_account_id="" if inherit else _rarely(draw, accounts_good, accounts_odd, percent=10),
            credit_account_id="" if inherit else _rarely(draw, accounts_good, accounts_odd, percent=10),
            amount=None if amount_roll < 5 else draw(st.integers(1, 60)) if amount_roll < 9 else draw(AMOUNTS_ODD),
            ledger="" if inherit else ledger,
            asset="" if inherit else asset,
            code="" if inherit else code,
            flags=flags,
            pending_id=pending_id,
            timeout_s=_rarely(draw, st.just(0), st.just(5), percent=3),
            metadata=metadata,
        )
    debit_account_id = _rarely(draw, accounts_good, accounts_odd, percent=8)
    credit_account_id = _rarely(draw, st.sampled_from([a for a in good if a != debit_account_id]), accounts_odd, percent=8)
    return NewTransfer(
        id=transfer_id,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=_rarely(draw, st.integers(1, 60), AMOUNTS_ODD, percent=5),
        ledger=ledger,
        asset=asset,
        code=code,
        flags=flags,
        pending_id=_rarely(draw, st.none(), st.just(transfer_id + "p"), percent=3),
        timeout_s=draw(st.sampled_from(timeouts)) if kind == "pending" else _rarely(draw, st.just(0), st.just(5), percent=3),
        metadata=metadata,
    )


@st.composite
def scenarios(draw, prefix: str, *, timeouts: tuple[int, ...] = (0, 0, 0, 5, 5, 3600, 3600, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 3600, 0, -1), with_time: bool = True, steps_max: int = 8) -> Scenario:
    accounts = fixed_accounts(prefix) + draw(extra_accounts(prefix))
    steps = [Step(transfers=funding_transfers(prefix))]
    history: list[NewTransfer] = []
    for index in range(draw(st.integers(1, steps_max))):
        transfers = []
        for _ in range(draw(st.integers(1, 8))):
            transfers.append(draw(new_transfers(prefix, timeouts=list(timeouts), history=history)))
            history.append(transfers[-1])
        steps.append(
            Step(
                transfers=transfers,
                advance_s=draw(st.sampled_from([0, 0, 1, 3, 10])) if with_time else 0,
                expire_after=draw(st.booleans()) if with_time else False,
                grouped_with_previous=index > 0 and draw(st.booleans()),
            )
        )
    return Scenario(accounts=accounts, steps=steps)
