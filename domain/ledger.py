"""The double-entry ledger's rules: TigerBeetle's model, as pure Python over in-memory state.

Accounts hold four running balances in integer base units. A transfer moves `amount` from a
debit account to a credit account of the same ledger (tenant) and asset. Its id is chosen by
the caller from the business object and step (`pi_123/settle/fee`), so a retry posts nothing
twice: same id and same fields gives `exists`, same id and other fields gives
`exists_with_different_<field>`.

`LedgerBatch` applies batches of `NewTransfer`s, one after another and in order, to a read-only
`LedgerState` (the accounts and transfers a batch can touch), and records what changed: new
transfer rows, pending transfers whose status moved, and balance deltas per account. The store
loads that state under row locks, runs the batch and writes the changes set-based; tests run it
over the whole state. `check_transfers` runs the checks that need no state on their own, so the
store can run them before it takes the locks.

Per transfer the checks run in this order, and the first that fails is the result:

1. static: id (`id_must_not_be_empty`, `id_invalid`); `flags_are_mutually_exclusive`;
   pending id (`pending_id_must_not_be_empty`, `pending_id_invalid`,
   `pending_id_must_be_different` for a post/void, `pending_id_must_be_empty` otherwise);
   timeout (`timeout_out_of_range`, `timeout_reserved_for_pending_transfer`); amount
   (`amount_must_not_be_zero`, `amount_out_of_range`); `metadata_invalid`; then the fields
   (`debit_account_id_invalid`, `credit_account_id_invalid`, `accounts_must_be_different`,
   `ledger_must_not_be_empty`, `ledger_invalid`, `asset_must_not_be_empty`, `asset_invalid`,
   `code_must_not_be_empty`, `code_invalid`). A post or void may leave accounts, ledger, asset
   and code empty: they are taken from the pending transfer.
2. a plain or pending transfer: `exists*`; `debit_account_not_found`,
   `credit_account_not_found`; `accounts_must_have_the_same_ledger`,
   `accounts_must_have_the_same_asset`; `transfer_must_have_the_same_ledger_as_accounts`,
   `transfer_must_have_the_same_asset_as_accounts`; `account_closed`; `overflows_debits`,
   `overflows_credits`; `exceeds_credits`, `exceeds_debits`.
3. a post or void: `pending_transfer_not_found`, `pending_transfer_not_pending`;
   `pending_transfer_has_different_<field>` for each given field; the amount (`None` means the
   pending amount; a post may take less; a void takes all of it):
   `exceeds_pending_transfer_amount`, `pending_transfer_has_different_amount`; then `exists*`
   against the resolved fields; `pending_transfer_already_posted`,
   `pending_transfer_already_voided`, `pending_transfer_expired`; `account_closed` (a post
   only: a void may always release a reservation).

`exists*` compares, in this order: flags (without `linked`), debit account, credit account,
amount, pending id, ledger, asset, code, timeout, metadata.

Linked chains follow TigerBeetle: every transfer of a chain but the last has `linked`; if one
fails, it carries its own result, the others carry `linked_event_failed` and nothing of the
chain is applied; a batch whose last transfer has `linked` leaves its chain open, and that last
transfer carries `linked_event_chain_open`. One departure: `exists` counts as success inside a
chain (in TigerBeetle it breaks it), so a retried chain reports `exists` for every transfer
instead of failing.

Pending transfers with a timeout expire: after `expires_at` they can no longer be posted or
voided, and `LedgerBatch.expire_pending_transfers` releases their reservations.

The engine takes any account ids and flags. The application's accounts follow one catalogue and
one id scheme, at the end of the accounts section: `ACCOUNT_CODES` gives each account code its
flags and normal balance side, and `AccountKey` its id, `{ledger}/{asset}/{code}` for the
ledger's own accounts and `{ledger}/{asset}/{code}/{owner}` for one held for someone else.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

# EVM token amounts are uint256.
AMOUNT_MAX = 2**256 - 1
# What NUMERIC(78,0) holds.
BALANCE_MAX = 10**78 - 1
ID_LENGTH_MAX = 256
NAME_LENGTH_MAX = 128
METADATA_BYTES_MAX = 4096
METADATA_DEPTH_MAX = 8
# Ten years: longer reservations are a bug, not a business need.
TIMEOUT_S_MAX = 10 * 366 * 24 * 3600


class AccountCode(enum.StrEnum):
    """What an account is for."""

    TREASURY = "treasury"
    CUSTOMER_DEPOSITS = "customer_deposits"
    MERCHANT_AVAILABLE = "merchant_available"
    MERCHANT_RESERVED = "merchant_reserved"
    PLATFORM_FEES = "platform_fees"
    AFFILIATE_PAYABLE = "affiliate_payable"
    PAYOUTS_IN_FLIGHT = "payouts_in_flight"
    UNALLOCATED = "unallocated"
    ROUNDING = "rounding"


class AccountFlags(enum.IntFlag):
    """Stored as an integer; the bit values are part of the schema."""

    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2
    # Refuses new transfers; a pending transfer against it can still be voided.
    CLOSED = 4


class TransferFlags(enum.IntFlag):
    """Stored as an integer; the bit values are part of the schema."""

    NONE = 0
    LINKED = 1
    PENDING = 2
    POST_PENDING = 4
    VOID_PENDING = 8


class PendingStatus(enum.StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


class CreateAccountResult(enum.StrEnum):
    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_ASSET = "exists_with_different_asset"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS_WITH_DIFFERENT_OWNER = "exists_with_different_owner"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    ID_MUST_NOT_BE_EMPTY = "id_must_not_be_empty"
    ID_INVALID = "id_invalid"
    LEDGER_MUST_NOT_BE_EMPTY = "ledger_must_not_be_empty"
    LEDGER_INVALID = "ledger_invalid"
    ASSET_MUST_NOT_BE_EMPTY = "asset_must_not_be_empty"
    ASSET_INVALID = "asset_invalid"
    OWNER_INVALID = "owner_invalid"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"


class CreateTransferResult(enum.StrEnum):
    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = "exists_with_different_debit_account_id"
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = "exists_with_different_credit_account_id"
    EXISTS_WITH_DIFFERENT_AMOUNT = "exists_with_different_amount"
    EXISTS_WITH_DIFFERENT_PENDING_ID = "exists_with_different_pending_id"
    EXISTS_WITH_DIFFERENT_LEDGER = "exists_with_different_ledger"
    EXISTS_WITH_DIFFERENT_ASSET = "exists_with_different_asset"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS_WITH_DIFFERENT_TIMEOUT = "exists_with_different_timeout"
    EXISTS_WITH_DIFFERENT_METADATA = "exists_with_different_metadata"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    ID_MUST_NOT_BE_EMPTY = "id_must_not_be_empty"
    ID_INVALID = "id_invalid"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    PENDING_ID_MUST_NOT_BE_EMPTY = "pending_id_must_not_be_empty"
    PENDING_ID_INVALID = "pending_id_invalid"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    PENDING_ID_MUST_BE_EMPTY = "pending_id_must_be_empty"
    TIMEOUT_OUT_OF_RANGE = "timeout_out_of_range"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    AMOUNT_MUST_NOT_BE_ZERO = "amount_must_not_be_zero"
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
    METADATA_INVALID = "metadata_invalid"
    DEBIT_ACCOUNT_ID_INVALID = "debit_account_id_invalid"
    CREDIT_ACCOUNT_ID_INVALID = "credit_account_id_invalid"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    LEDGER_MUST_NOT_BE_EMPTY = "ledger_must_not_be_empty"
    LEDGER_INVALID = "ledger_invalid"
    ASSET_MUST_NOT_BE_EMPTY = "asset_must_not_be_empty"
    ASSET_INVALID = "asset_invalid"
    CODE_MUST_NOT_BE_EMPTY = "code_must_not_be_empty"
    CODE_INVALID = "code_invalid"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
    ACCOUNTS_MUST_HAVE_THE_SAME_ASSET = "accounts_must_have_the_same_asset"
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = "transfer_must_have_the_same_ledger_as_accounts"
    TRANSFER_MUST_HAVE_THE_SAME_ASSET_AS_ACCOUNTS = "transfer_must_have_the_same_asset_as_accounts"
    ACCOUNT_CLOSED = "account_closed"
    OVERFLOWS_DEBITS = "overflows_debits"
    OVERFLOWS_CREDITS = "overflows_credits"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = "pending_transfer_has_different_debit_account_id"
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = "pending_transfer_has_different_credit_account_id"
    PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = "pending_transfer_has_different_ledger"
    PENDING_TRANSFER_HAS_DIFFERENT_ASSET = "pending_transfer_has_different_asset"
    PENDING_TRANSFER_HAS_DIFFERENT_CODE = "pending_transfer_has_different_code"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"


# Results after which a transfer exists as asked: they keep a linked chain going.
TRANSFER_RESULTS_SUCCESSFUL = frozenset({CreateTransferResult.OK, CreateTransferResult.EXISTS})

# The outcome of a transfer's checks that need no state (`check_transfers`): the first
# problem found, or None and the transfer's metadata as canonical JSON.
CheckedTransfer = tuple[CreateTransferResult | None, str]


def _require_text(name: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")


def _require_integer(name: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    # bool is an int subclass: refuse it so True never becomes one base unit.
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


# ---------------------------------------------------------------------------------------- types
@dataclass(frozen=True, slots=True, kw_only=True)
class NewAccount:
    """An account to create. Types are checked here (a programmer's error raises TypeError);
    values are checked by `create_accounts`, which answers with a result."""

    id: str
    ledger: str
    asset: str
    code: AccountCode
    owner: str | None = None
    flags: AccountFlags = AccountFlags.NONE

    def __post_init__(self) -> None:
        for name in ("id", "ledger", "asset"):
            _require_text(name, getattr(self, name))
        _require_text("owner", self.owner, optional=True)
        if not isinstance(self.code, AccountCode):
            raise TypeError(f"code must be an AccountCode, not {self.code!r}")
        if not isinstance(self.flags, AccountFlags):
            raise TypeError(f"flags must be AccountFlags, not {self.flags!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """An account as stored, with its running balances."""

    id: str
    ledger: str
    asset: str
    code: AccountCode
    owner: str | None
    flags: AccountFlags
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def __post_init__(self) -> None:
        for name in ("debits_pending", "debits_posted", "credits_pending", "credits_posted"):
            value = getattr(self, name)
            _require_integer(name, value)
            assert 0 <= value <= BALANCE_MAX, f"account {self.id}: {name} out of range: {value}"

    @classmethod
    def from_new(cls, new: NewAccount) -> "Account":
        return cls(id=new.id, ledger=new.ledger, asset=new.asset, code=new.code, owner=new.owner, flags=new.flags)

    @property
    def debits_total(self) -> int:
        return self.debits_pending + self.debits_posted

    @property
    def credits_total(self) -> int:
        return self.credits_pending + self.credits_posted

    @property
    def balances(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTransfer:
    """A transfer to create. Types are checked here (a programmer's error raises TypeError);
    values are checked by `LedgerBatch.create_transfers`, which answers with a result.

    `amount` is in the asset's base units; `None` only for a post (the whole pending amount)
    or a void. `timeout_s` (0: none) only for a pending transfer.
    """

    id: str
    debit_account_id: str = ""
    credit_account_id: str = ""
    amount: int | None = None
    ledger: str = ""
    asset: str = ""
    code: str = ""
    flags: TransferFlags = TransferFlags.NONE
    pending_id: str | None = None
    timeout_s: int = 0
    metadata: Mapping[str, object] | None = None

    def __post_init__(self) -> None:
        # The common case in one expression: callers build these by the thousand.
        if (
            type(self.id) is str
            and type(self.debit_account_id) is str
            and type(self.credit_account_id) is str
            and type(self.ledger) is str
            and type(self.asset) is str
            and type(self.code) is str
            and (self.pending_id is None or type(self.pending_id) is str)
            and (self.amount is None or type(self.amount) is int)
            and type(self.timeout_s) is int
            and type(self.flags) is TransferFlags
            and self.metadata is None
        ):
            return
        for name in ("id", "debit_account_id", "credit_account_id", "ledger", "asset", "code"):
            _require_text(name, getattr(self, name))
        _require_text("pending_id", self.pending_id, optional=True)
        _require_integer("amount", self.amount, optional=True)
        _require_integer("timeout_s", self.timeout_s)
        if not isinstance(self.flags, TransferFlags):
            raise TypeError(f"flags must be TransferFlags, not {self.flags!r}")
        if self.metadata is not None and not isinstance(self.metadata, Mapping):
            raise TypeError(f"metadata must be a mapping, not {type(self.metadata).__name__}")


@dataclass(slots=True, kw_only=True)
class Transfer:
    """A transfer as stored. A post or void row carries the pending transfer's accounts, ledger,
    asset and code, and the amount it posted (a void: the amount it released).

    Treat it as immutable (the engine replaces a transfer, never changes one); it is not
    `frozen` because a frozen dataclass costs five times as much to build, and a batch builds
    thousands of these while it holds the row locks."""

    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    ledger: str
    asset: str
    code: str
    flags: TransferFlags
    pending_id: str | None
    timeout_s: int
    metadata: Mapping[str, object]
    created_at: datetime
    expires_at: datetime | None
    # Set on pending transfers only.
    pending_status: PendingStatus | None

    def __post_init__(self) -> None:
        _require_integer("amount", self.amount)
        assert 0 < self.amount <= AMOUNT_MAX, f"transfer {self.id}: amount out of range: {self.amount}"
        assert self.debit_account_id != self.credit_account_id, f"transfer {self.id}: same account on both sides"
        assert bool(int(self.flags) & 2) == (self.pending_status is not None), (
            f"transfer {self.id}: pending status {self.pending_status} with flags {self.flags!r}"
        )

    @property
    def is_post_or_void(self) -> bool:
        return bool(int(self.flags) & 12)


@dataclass(frozen=True, slots=True)
class BalanceDelta:
    """What a batch adds to an account's balances; pending ones can go down."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0


@dataclass(frozen=True, slots=True)
class LedgerChanges:
    """What a batch changed, to be written in one transaction."""

    # In the order they were created: the order of their sequence numbers.
    transfers_new: list[Transfer]
    # Pending transfers that already existed before the batch and were posted, voided or expired.
    pending_status_changes: dict[str, PendingStatus]
    balance_deltas: dict[str, BalanceDelta]

    @property
    def empty(self) -> bool:
        return not (self.transfers_new or self.pending_status_changes or self.balance_deltas)


@dataclass
class LedgerState:
    """Accounts and transfers by id: all of them (tests), or those a batch can touch (store)."""

    accounts: dict[str, Account] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)

    def apply(self, changes: LedgerChanges) -> None:
        for transfer in changes.transfers_new:
            assert transfer.id not in self.transfers, f"transfer {transfer.id} written twice"
            self.transfers[transfer.id] = transfer
        for transfer_id, status in changes.pending_status_changes.items():
            self.transfers[transfer_id] = replace(self.transfers[transfer_id], pending_status=status)
        for account_id, delta in changes.balance_deltas.items():
            account = self.accounts[account_id]
            self.accounts[account_id] = replace(
                account,
                debits_pending=account.debits_pending + delta.debits_pending,
                debits_posted=account.debits_posted + delta.debits_posted,
                credits_pending=account.credits_pending + delta.credits_pending,
                credits_posted=account.credits_posted + delta.credits_posted,
            )


# ---------------------------------------------------------------------------- input checking
def text_problem(value: str, *, length_max: int) -> str | None:
    """None if `value` can be stored as a non-empty text key, else "empty" or "invalid"."""
    if value == "":
        return "empty"
    if len(value) > length_max or "\x00" in value:
        return "invalid"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return "invalid"
    return None


def metadata_canonical(metadata: Mapping[str, object] | None) -> str | None:
    """Metadata as canonical JSON (sorted keys, no spaces), or None if it is not storable:
    only objects, arrays, strings, integers, booleans and null; bounded depth and size."""
    if not metadata:
        return "{}" if metadata is None or isinstance(metadata, Mapping) else None
    if not isinstance(metadata, Mapping) or not _metadata_value_ok(metadata, depth=0):
        return None
    encoded = json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        size_bytes = len(encoded.encode("utf-8"))
    except UnicodeEncodeError:
        return None
    if size_bytes > METADATA_BYTES_MAX:
        return None
    return encoded


def _metadata_value_ok(value: object, *, depth: int) -> bool:
    if depth > METADATA_DEPTH_MAX:
        return False
    if value is None or type(value) in (bool, int):
        return True
    if type(value) is str:
        # PostgreSQL's jsonb cannot hold NUL.
        return "\x00" not in value
    if isinstance(value, Mapping):
        return all(type(key) is str and "\x00" not in key and _metadata_value_ok(item, depth=depth + 1) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_metadata_value_ok(item, depth=depth + 1) for item in value)
    return False


# ---------------------------------------------------------------------------------- accounts
def create_accounts(
    existing: Mapping[str, Account], batch: Sequence[NewAccount]
) -> tuple[list[CreateAccountResult], list[Account]]:
    """Results, one per account, and the accounts to insert. `existing` holds every account of
    the batch's ids that exists."""
    results: list[CreateAccountResult] = []
    created: dict[str, Account] = {}
    for new in batch:
        result = _create_account(new, existing.get(new.id) or created.get(new.id))
        if result is CreateAccountResult.OK:
            created[new.id] = Account.from_new(new)
        results.append(result)
    return results, list(created.values())


def _create_account(new: NewAccount, existing: Account | None) -> CreateAccountResult:
    R = CreateAccountResult
    problem = text_problem(new.id, length_max=ID_LENGTH_MAX)
    if problem:
        return R.ID_MUST_NOT_BE_EMPTY if problem == "empty" else R.ID_INVALID
    problem = text_problem(new.ledger, length_max=NAME_LENGTH_MAX)
    if problem:
        return R.LEDGER_MUST_NOT_BE_EMPTY if problem == "empty" else R.LEDGER_INVALID
    problem = text_problem(new.asset, length_max=NAME_LENGTH_MAX)
    if problem:
        return R.ASSET_MUST_NOT_BE_EMPTY if problem == "empty" else R.ASSET_INVALID
    if new.owner is not None and text_problem(new.owner, length_max=ID_LENGTH_MAX):
        return R.OWNER_INVALID
    limits = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    if new.flags & limits == limits:
        return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if existing is None:
        return R.OK
    if existing.ledger != new.ledger:
        return R.EXISTS_WITH_DIFFERENT_LEDGER
    if existing.asset != new.asset:
        return R.EXISTS_WITH_DIFFERENT_ASSET
    if existing.code != new.code:
        return R.EXISTS_WITH_DIFFERENT_CODE
    if existing.owner != new.owner:
        return R.EXISTS_WITH_DIFFERENT_OWNER
    if existing.flags != new.flags:
        return R.EXISTS_WITH_DIFFERENT_FLAGS
    return R.EXISTS


# ------------------------------------------------------- the application's accounts: codes and ids
class NormalSide(enum.StrEnum):
    """The side an account's balance sits on: debit for what the tenant holds (tokens at deposit
    addresses, in the treasury), credit for what it owes or earned."""

    DEBIT = "debit"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class AccountCodeRule:
    normal_side: NormalSide
    # What every account of the code is created with. Flags are part of an account's identity
    # (creating it again with other flags is refused), so changing them here needs a migration
    # of the accounts that exist.
    flags: AccountFlags


# Every account code, once. Debit-normal accounts hold tokens: they can never send more than they
# received. Credit-normal ones are owed or earned: never paid out beyond what they were credited.
# A reservation (a pending debit) counts against the limit, so two payouts cannot both take it.
ACCOUNT_CODES: Mapping[AccountCode, AccountCodeRule] = {
    AccountCode.TREASURY: AccountCodeRule(NormalSide.DEBIT, AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
    AccountCode.CUSTOMER_DEPOSITS: AccountCodeRule(NormalSide.DEBIT, AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS),
    AccountCode.MERCHANT_AVAILABLE: AccountCodeRule(NormalSide.CREDIT, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
    AccountCode.MERCHANT_RESERVED: AccountCodeRule(NormalSide.CREDIT, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
    AccountCode.PLATFORM_FEES: AccountCodeRule(NormalSide.CREDIT, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
    AccountCode.AFFILIATE_PAYABLE: AccountCodeRule(NormalSide.CREDIT, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
    AccountCode.PAYOUTS_IN_FLIGHT: AccountCodeRule(NormalSide.CREDIT, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
    AccountCode.UNALLOCATED: AccountCodeRule(NormalSide.CREDIT, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
    # Where integer division leaves its remainders, either way: no limit.
    AccountCode.ROUNDING: AccountCodeRule(NormalSide.CREDIT, AccountFlags.NONE),
}
assert set(ACCOUNT_CODES) == set(AccountCode), "every account code needs its rule"

ACCOUNT_ID_SEPARATOR = "/"


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountKey:
    """What identifies one of the application's accounts, and its id.

    Every account has an owner: whose money it holds. The tenant's own accounts (its treasury,
    the deposits it holds for customers, the merchant's available balance, the platform's fees in
    its books) are owned by its ledger, and their id leaves the owner out:
    `{ledger}/{asset}/{code}`. An account held for someone else in the tenant's books (an
    affiliate's payable balance, a member's deposits, a payout recipient) names its owner:
    `{ledger}/{asset}/{code}/{owner}`. So ids written before owners existed (always the
    tenant's own, stored with `owner` = the ledger) are already in this scheme, and an id and
    its row's columns always agree (`parse_account_id`; db.ledger_invariants checks it).

    The parts are opaque, non-empty and free of "/": an id has one reading. The engine does not
    require this scheme (its tests and the bench name accounts freely); the application does.
    """

    ledger: str
    asset: str
    code: AccountCode
    # None: the ledger's own account; stored as the ledger.
    owner: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, AccountCode):
            raise TypeError(f"code must be an AccountCode, not {self.code!r}")
        if self.owner is None:
            object.__setattr__(self, "owner", self.ledger)
        for name, length_max in (("ledger", NAME_LENGTH_MAX), ("asset", NAME_LENGTH_MAX), ("owner", ID_LENGTH_MAX)):
            value = getattr(self, name)
            _require_text(name, value)
            if text_problem(value, length_max=length_max) or ACCOUNT_ID_SEPARATOR in value:
                raise ValueError(f"account {name} {value!r} cannot be part of an account id")
        if len(self.id) > ID_LENGTH_MAX:
            raise ValueError(f"account id {self.id!r} is longer than {ID_LENGTH_MAX}")

    @property
    def owned_by_ledger(self) -> bool:
        return self.owner == self.ledger

    @property
    def id(self) -> str:
        parts = [self.ledger, self.asset, self.code.value]
        if not self.owned_by_ledger:
            parts.append(self.owner)
        return ACCOUNT_ID_SEPARATOR.join(parts)

    def new_account(self) -> NewAccount:
        """The account to create: its code's flags, its owner stored."""
        return NewAccount(
            id=self.id, ledger=self.ledger, asset=self.asset, code=self.code, owner=self.owner, flags=ACCOUNT_CODES[self.code].flags
        )


def account_id(*, ledger: str, asset: str, code: AccountCode | str, owner: str | None = None) -> str:
    """The id of an account: `{ledger}/{asset}/{code}` for the ledger's own, with `/{owner}` for
    one held for someone else. Raises ValueError for parts that cannot form an id."""
    return AccountKey(ledger=ledger, asset=asset, code=AccountCode(code), owner=owner).id


def parse_account_id(value: str) -> AccountKey:
    """The key an account id was built from; ValueError for an id outside the scheme (an
    unknown code, a missing or extra part, or the ledger named as an owner: that account's id
    leaves the owner out)."""
    parts = value.split(ACCOUNT_ID_SEPARATOR)
    if len(parts) not in (3, 4):
        raise ValueError(f"account id {value!r} is not {{ledger}}/{{asset}}/{{code}}[/{{owner}}]")
    ledger, asset, code, *owner = parts
    if owner and owner[0] == ledger:
        raise ValueError(f"account id {value!r} names its ledger as owner: its id is {ACCOUNT_ID_SEPARATOR.join(parts[:3])!r}")
    try:
        account_code = AccountCode(code)
    except ValueError:
        raise ValueError(f"account id {value!r}: unknown account code {code!r}") from None
    return AccountKey(ledger=ledger, asset=asset, code=account_code, owner=owner[0] if owner else None)


def balance_on_normal_side(account: Account) -> int:
    """An account's posted balance on its code's normal side: what a treasury holds, what a
    merchant is owed. Negative when it sits on the other side (only a `rounding` account can)."""
    if ACCOUNT_CODES[account.code].normal_side is NormalSide.DEBIT:
        return account.debits_posted - account.credits_posted
    return account.credits_posted - account.debits_posted


# --------------------------------------------------------------------------------- transfers
_MISSING = object()
# Flag bits as plain ints: IntFlag arithmetic is slow on the hot path.
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST_PENDING = int(TransferFlags.POST_PENDING)
_VOID_PENDING = int(TransferFlags.VOID_PENDING)
_DEBITS_MUST_NOT_EXCEED_CREDITS = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CREDITS_MUST_NOT_EXCEED_DEBITS = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_CLOSED = int(AccountFlags.CLOSED)
# Positions in a balances list.
_DEBITS_PENDING, _DEBITS_POSTED, _CREDITS_PENDING, _CREDITS_POSTED = 0, 1, 2, 3


class LedgerBatch:
    """Applies transfers to a read-only `LedgerState` and records the changes.

    Reads go through overlays over the state (new or changed transfers; the running balances
    of the accounts touched); every write to an overlay is journaled so that a failed linked
    chain is undone. `create_transfers` may be called once per caller of a group commit; each
    call is its own batch for linked chains.
    """

    def __init__(self, state: LedgerState, *, now: datetime) -> None:
        assert now.tzinfo is not None, "now must be timezone-aware"
        self._state = state
        self._now = now
        self._transfers: dict[str, Transfer] = {}
        # [debits_pending, debits_posted, credits_pending, credits_posted] of each account touched.
        self._balances: dict[str, list[int]] = {}
        # For `take_transfer_changes`: ids written since the last take, and what was taken.
        self._written_ids: list[str] = []
        self._taken: dict[str, Transfer] = {}
        # (True, transfer id, previous value or _MISSING) or (False, account id, previous balances), newest last.
        self._journal: list[tuple[bool, str, object]] = []

    # ---------------------------------------------------------------- overlays
    def _transfer(self, transfer_id: str) -> Transfer | None:
        transfer = self._transfers.get(transfer_id)
        return transfer if transfer is not None else self._state.transfers.get(transfer_id)

    def _write_transfer(self, transfer: Transfer) -> None:
        self._journal.append((True, transfer.id, self._transfers.get(transfer.id, _MISSING)))
        self._transfers[transfer.id] = transfer
        self._written_ids.append(transfer.id)

    def _balances_of(self, account: Account) -> list[int]:
        balances = self._balances.get(account.id)
        if balances is None:
            balances = self._balances[account.id] = list(account.balances)
        return balances

    def _add(self, account: Account, position_a: int, amount_a: int, position_b: int, amount_b: int) -> None:
        balances = self._balances_of(account)
        self._journal.append((False, account.id, tuple(balances)))
        balances[position_a] += amount_a
        balances[position_b] += amount_b
        assert 0 <= balances[position_a] <= BALANCE_MAX and 0 <= balances[position_b] <= BALANCE_MAX, (
            f"account {account.id}: balances out of range: {balances}"
        )

    def _undo_to(self, mark: int) -> None:
        while len(self._journal) > mark:
            is_transfer, key, previous = self._journal.pop()
            if not is_transfer:
                self._balances[key][:] = previous
            elif previous is _MISSING:
                del self._transfers[key]
            else:
                self._transfers[key] = previous

    # ---------------------------------------------------------------- batches
    def create_transfers(self, batch: Sequence[NewTransfer], checked: Sequence[CheckedTransfer] | None = None) -> list[CreateTransferResult]:
        """One result per transfer, in order. Never raises for a business outcome.

        `checked` is `check_transfers(batch)`, when the caller ran it earlier (the store does,
        before it takes the row locks).
        """
        R = CreateTransferResult
        if checked is None:
            checked = check_transfers(batch)
        assert len(checked) == len(batch)
        results: list[CreateTransferResult] = []
        chain_start: int | None = None
        chain_broken = False
        chain_mark = 0
        last = len(batch) - 1
        for index, new in enumerate(batch):
            linked = bool(int(new.flags) & _LINKED)
            if linked and chain_start is None:
                chain_start, chain_broken, chain_mark = index, False, len(self._journal)
            if linked and index == last:
                result = R.LINKED_EVENT_CHAIN_OPEN
            elif chain_broken:
                result = R.LINKED_EVENT_FAILED
            else:
                problem, metadata = checked[index]
                if problem is not None:
                    result = problem
                elif int(new.flags) & (_POST_PENDING | _VOID_PENDING):
                    result = self._post_or_void(new, metadata)
                else:
                    result = self._plain_or_pending(new, metadata)
            if result not in TRANSFER_RESULTS_SUCCESSFUL and chain_start is not None and not chain_broken:
                chain_broken = True
                self._undo_to(chain_mark)
                for earlier in range(chain_start, index):
                    results[earlier] = R.LINKED_EVENT_FAILED
            results.append(result)
            if chain_start is not None and (not linked or result is R.LINKED_EVENT_CHAIN_OPEN):
                chain_start, chain_broken = None, False
        assert len(results) == len(batch) and chain_start is None
        # No chain outlives its batch: nothing left to undo.
        self._journal.clear()
        return results

    def expire_pending_transfers(self, transfer_ids: Iterable[str]) -> list[str]:
        """Expire those of `transfer_ids` that are pending past their timeout, releasing their
        reservations. Returns the ids expired."""
        expired = []
        for transfer_id in transfer_ids:
            pending = self._transfer(transfer_id)
            if pending is None or pending.pending_status is not PendingStatus.PENDING:
                continue
            if pending.expires_at is None or self._now < pending.expires_at:
                continue
            self._release(pending, PendingStatus.EXPIRED, amount_posted=0)
            expired.append(transfer_id)
        return expired

    def changes(self) -> LedgerChanges:
        """Everything the batch changed, against the state it started from."""
        transfers_new = []
        pending_status_changes = {}
        for transfer_id, transfer in self._transfers.items():
            before = self._state.transfers.get(transfer_id)
            if before is None:
                transfers_new.append(transfer)
            else:
                assert transfer.pending_status is not before.pending_status
                pending_status_changes[transfer_id] = transfer.pending_status
        return LedgerChanges(transfers_new, pending_status_changes, self.balance_deltas())

    @property
    def transfers_written_since_take(self) -> int:
        """About how many transfers `take_transfer_changes` would return now (an upper bound)."""
        return len(self._written_ids)

    def take_transfer_changes(self) -> tuple[list[Transfer], dict[str, PendingStatus]]:
        """The transfers created, and the pending statuses changed, since the last take (rows
        created by an earlier take count as existing). Lets the store write a batch in parts
        while the engine goes on; balances are written once, from `balance_deltas`."""
        transfers_new = []
        pending_status_changes = {}
        for transfer_id in dict.fromkeys(self._written_ids):
            transfer = self._transfers.get(transfer_id)
            if transfer is None:  # undone with its chain
                continue
            before = self._taken.get(transfer_id) or self._state.transfers.get(transfer_id)
            if before is None:
                transfers_new.append(transfer)
            elif transfer.pending_status is not before.pending_status:
                pending_status_changes[transfer_id] = transfer.pending_status
            else:  # changed and changed back within a failed chain
                continue
            self._taken[transfer_id] = transfer
        self._written_ids.clear()
        return transfers_new, pending_status_changes

    def balance_deltas(self) -> dict[str, BalanceDelta]:
        """What the batch adds to each account's balances."""
        balance_deltas = {}
        for account_id, balances in self._balances.items():
            before = self._state.accounts[account_id].balances
            if tuple(balances) != before:
                balance_deltas[account_id] = BalanceDelta(*(after - previous for after, previous in zip(balances, before)))
        return balance_deltas

    # ---------------------------------------------------------------- one transfer
    def _plain_or_pending(self, new: NewTransfer, metadata: str) -> CreateTransferResult:
        R = CreateTransferResult
        existing = self._transfer(new.id)
        if existing is not None:
            return _exists(
                existing,
                flags=new.flags,
                debit_account_id=new.debit_account_id,
                credit_account_id=new.credit_account_id,
                amount=new.amount,
                pending_id=None,
                ledger=new.ledger,
                asset=new.asset,
                code=new.code,
                timeout_s=new.timeout_s,
                metadata=metadata,
            )
        accounts = self._state.accounts
        debit = accounts.get(new.debit_account_id)
        if debit is None:
            return R.DEBIT_ACCOUNT_NOT_FOUND
        credit = accounts.get(new.credit_account_id)
        if credit is None:
            return R.CREDIT_ACCOUNT_NOT_FOUND
        if debit.ledger != credit.ledger:
            return R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if debit.asset != credit.asset:
            return R.ACCOUNTS_MUST_HAVE_THE_SAME_ASSET
        if new.ledger != debit.ledger:
            return R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
        if new.asset != debit.asset:
            return R.TRANSFER_MUST_HAVE_THE_SAME_ASSET_AS_ACCOUNTS
        debit_flags, credit_flags = int(debit.flags), int(credit.flags)
        if (debit_flags | credit_flags) & _CLOSED:
            return R.ACCOUNT_CLOSED
        amount = new.amount
        assert amount is not None and 0 < amount <= AMOUNT_MAX
        debit_balances, credit_balances = self._balances_of(debit), self._balances_of(credit)
        debits_after = debit_balances[_DEBITS_PENDING] + debit_balances[_DEBITS_POSTED] + amount
        credits_after = credit_balances[_CREDITS_PENDING] + credit_balances[_CREDITS_POSTED] + amount
        if debits_after > BALANCE_MAX:
            return R.OVERFLOWS_DEBITS
        if credits_after > BALANCE_MAX:
            return R.OVERFLOWS_CREDITS
        if debit_flags & _DEBITS_MUST_NOT_EXCEED_CREDITS and debits_after > debit_balances[_CREDITS_POSTED]:
            return R.EXCEEDS_CREDITS
        if credit_flags & _CREDITS_MUST_NOT_EXCEED_DEBITS and credits_after > credit_balances[_DEBITS_POSTED]:
            return R.EXCEEDS_DEBITS

        pending = bool(int(new.flags) & _PENDING)
        self._journal.append((False, debit.id, tuple(debit_balances)))
        self._journal.append((False, credit.id, tuple(credit_balances)))
        if pending:
            debit_balances[_DEBITS_PENDING] += amount
            credit_balances[_CREDITS_PENDING] += amount
        else:
            debit_balances[_DEBITS_POSTED] += amount
            credit_balances[_CREDITS_POSTED] += amount
        self._write_transfer(
            Transfer(
                id=new.id,
                debit_account_id=debit.id,
                credit_account_id=credit.id,
                amount=amount,
                ledger=debit.ledger,
                asset=debit.asset,
                code=new.code,
                flags=new.flags,
                pending_id=None,
                timeout_s=new.timeout_s,
                metadata={} if metadata == "{}" else json.loads(metadata),
                created_at=self._now,
                expires_at=self._now + timedelta(seconds=new.timeout_s) if pending and new.timeout_s else None,
                pending_status=PendingStatus.PENDING if pending else None,
            )
        )
        return R.OK

    def _post_or_void(self, new: NewTransfer, metadata: str) -> CreateTransferResult:
        R = CreateTransferResult
        assert new.pending_id is not None
        pending = self._transfer(new.pending_id)
        if pending is None:
            return R.PENDING_TRANSFER_NOT_FOUND
        if pending.pending_status is None:
            return R.PENDING_TRANSFER_NOT_PENDING
        if new.debit_account_id and new.debit_account_id != pending.debit_account_id:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        if new.credit_account_id and new.credit_account_id != pending.credit_account_id:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        if new.ledger and new.ledger != pending.ledger:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
        if new.asset and new.asset != pending.asset:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_ASSET
        if new.code and new.code != pending.code:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CODE
        amount = pending.amount if new.amount is None else new.amount
        if amount > pending.amount:
            return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
        posting = bool(int(new.flags) & _POST_PENDING)
        if not posting and amount < pending.amount:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
        existing = self._transfer(new.id)
        if existing is not None:
            return _exists(
                existing,
                flags=new.flags,
                debit_account_id=pending.debit_account_id,
                credit_account_id=pending.credit_account_id,
                amount=amount,
                pending_id=pending.id,
                ledger=pending.ledger,
                asset=pending.asset,
                code=pending.code,
                timeout_s=new.timeout_s,
                metadata=metadata,
            )
        if pending.pending_status is PendingStatus.POSTED:
            return R.PENDING_TRANSFER_ALREADY_POSTED
        if pending.pending_status is PendingStatus.VOIDED:
            return R.PENDING_TRANSFER_ALREADY_VOIDED
        if pending.pending_status is PendingStatus.EXPIRED:
            return R.PENDING_TRANSFER_EXPIRED
        if pending.expires_at is not None and self._now >= pending.expires_at:
            return R.PENDING_TRANSFER_EXPIRED
        debit = self._state.accounts.get(pending.debit_account_id)
        credit = self._state.accounts.get(pending.credit_account_id)
        assert debit is not None and credit is not None, f"the accounts of pending transfer {pending.id} are not loaded"
        if posting and (int(debit.flags) | int(credit.flags)) & _CLOSED:
            return R.ACCOUNT_CLOSED

        self._write_transfer(
            Transfer(
                id=new.id,
                debit_account_id=pending.debit_account_id,
                credit_account_id=pending.credit_account_id,
                amount=amount,
                ledger=pending.ledger,
                asset=pending.asset,
                code=pending.code,
                flags=new.flags,
                pending_id=pending.id,
                timeout_s=0,
                metadata={} if metadata == "{}" else json.loads(metadata),
                created_at=self._now,
                expires_at=None,
                pending_status=None,
            )
        )
        self._release(pending, PendingStatus.POSTED if posting else PendingStatus.VOIDED, amount_posted=amount if posting else 0)
        return R.OK

    def _release(self, pending: Transfer, status: PendingStatus, *, amount_posted: int) -> None:
        """Take a pending transfer's reservation off both accounts, posting `amount_posted` of it."""
        assert pending.pending_status is PendingStatus.PENDING
        assert 0 <= amount_posted <= pending.amount
        debit = self._state.accounts.get(pending.debit_account_id)
        credit = self._state.accounts.get(pending.credit_account_id)
        assert debit is not None and credit is not None, f"the accounts of pending transfer {pending.id} are not loaded"
        self._write_transfer(replace(pending, pending_status=status))
        self._add(debit, _DEBITS_PENDING, -pending.amount, _DEBITS_POSTED, amount_posted)
        self._add(credit, _CREDITS_PENDING, -pending.amount, _CREDITS_POSTED, amount_posted)


def check_transfers(batch: Sequence[NewTransfer]) -> list[CheckedTransfer]:
    """The checks that need no ledger state, for each transfer: pure, so the store runs them
    before it takes the row locks."""
    # Accounts, ledgers, assets and codes repeat across a batch: check each string once.
    ids_ok: set[str] = set()
    names_ok: set[str] = set()

    def id_problem(value: str) -> str | None:
        if value in ids_ok:
            return None
        problem = text_problem(value, length_max=ID_LENGTH_MAX)
        if problem is None:
            ids_ok.add(value)
        return problem

    def name_problem(value: str) -> str | None:
        if value in names_ok:
            return None
        problem = text_problem(value, length_max=NAME_LENGTH_MAX)
        if problem is None:
            names_ok.add(value)
        return problem

    return [_static_problem(new, id_problem, name_problem) for new in batch]


def _static_problem(
    new: NewTransfer, id_problem: Callable[[str], str | None], name_problem: Callable[[str], str | None]
) -> CheckedTransfer:
    """The checks that need no state; on success, the metadata as canonical JSON."""
    R = CreateTransferResult
    problem = text_problem(new.id, length_max=ID_LENGTH_MAX)
    if problem:
        return (R.ID_MUST_NOT_BE_EMPTY if problem == "empty" else R.ID_INVALID), ""
    flags = int(new.flags)
    if (flags & (_PENDING | _POST_PENDING | _VOID_PENDING)).bit_count() > 1:
        return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE, ""
    post_or_void = bool(flags & (_POST_PENDING | _VOID_PENDING))
    if post_or_void:
        if new.pending_id is None or new.pending_id == "":
            return R.PENDING_ID_MUST_NOT_BE_EMPTY, ""
        if id_problem(new.pending_id):
            return R.PENDING_ID_INVALID, ""
        if new.pending_id == new.id:
            return R.PENDING_ID_MUST_BE_DIFFERENT, ""
    elif new.pending_id is not None:
        return R.PENDING_ID_MUST_BE_EMPTY, ""
    if not 0 <= new.timeout_s <= TIMEOUT_S_MAX:
        return R.TIMEOUT_OUT_OF_RANGE, ""
    if new.timeout_s and not flags & _PENDING:
        return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER, ""
    if new.amount is None:
        if not post_or_void:
            return R.AMOUNT_MUST_NOT_BE_ZERO, ""
    elif new.amount == 0:
        return R.AMOUNT_MUST_NOT_BE_ZERO, ""
    elif not 0 < new.amount <= AMOUNT_MAX:
        return R.AMOUNT_OUT_OF_RANGE, ""
    metadata = metadata_canonical(new.metadata)
    if metadata is None:
        return R.METADATA_INVALID, ""
    if post_or_void:
        # Each of these may be left empty: the pending transfer's is taken.
        fields = (
            (new.debit_account_id, id_problem, R.DEBIT_ACCOUNT_ID_INVALID),
            (new.credit_account_id, id_problem, R.CREDIT_ACCOUNT_ID_INVALID),
            (new.ledger, name_problem, R.LEDGER_INVALID),
            (new.asset, name_problem, R.ASSET_INVALID),
            (new.code, name_problem, R.CODE_INVALID),
        )
        for value, problem_of, result in fields:
            if value and problem_of(value):
                return result, ""
        return None, metadata
    if id_problem(new.debit_account_id):
        return R.DEBIT_ACCOUNT_ID_INVALID, ""
    if id_problem(new.credit_account_id):
        return R.CREDIT_ACCOUNT_ID_INVALID, ""
    if new.debit_account_id == new.credit_account_id:
        return R.ACCOUNTS_MUST_BE_DIFFERENT, ""
    for value, if_empty, if_invalid in (
        (new.ledger, R.LEDGER_MUST_NOT_BE_EMPTY, R.LEDGER_INVALID),
        (new.asset, R.ASSET_MUST_NOT_BE_EMPTY, R.ASSET_INVALID),
        (new.code, R.CODE_MUST_NOT_BE_EMPTY, R.CODE_INVALID),
    ):
        problem = name_problem(value)
        if problem:
            return (if_empty if problem == "empty" else if_invalid), ""
    return None, metadata


def _exists(
    existing: Transfer,
    *,
    flags: TransferFlags,
    debit_account_id: str,
    credit_account_id: str,
    amount: int | None,
    pending_id: str | None,
    ledger: str,
    asset: str,
    code: str,
    timeout_s: int,
    metadata: str,
) -> CreateTransferResult:
    R = CreateTransferResult
    # `linked` says how a transfer was batched, not what it is.
    if int(existing.flags) & ~_LINKED != int(flags) & ~_LINKED:
        return R.EXISTS_WITH_DIFFERENT_FLAGS
    if existing.debit_account_id != debit_account_id:
        return R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if existing.credit_account_id != credit_account_id:
        return R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    if existing.amount != amount:
        return R.EXISTS_WITH_DIFFERENT_AMOUNT
    if existing.pending_id != pending_id:
        return R.EXISTS_WITH_DIFFERENT_PENDING_ID
    if existing.ledger != ledger:
        return R.EXISTS_WITH_DIFFERENT_LEDGER
    if existing.asset != asset:
        return R.EXISTS_WITH_DIFFERENT_ASSET
    if existing.code != code:
        return R.EXISTS_WITH_DIFFERENT_CODE
    if existing.timeout_s != timeout_s:
        return R.EXISTS_WITH_DIFFERENT_TIMEOUT
    if metadata_canonical(existing.metadata) != metadata:
        return R.EXISTS_WITH_DIFFERENT_METADATA
    return R.EXISTS
