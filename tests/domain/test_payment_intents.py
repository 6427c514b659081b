import pytest

from domain.payment_intents import IntentRuleViolation, IntentState, IntentStatus, Payment

DUE = 25_000_000


def intent(**overrides) -> IntentState:
    fields = dict(intent_id="pi_test", amount_due_base_units=DUE, confirmations_required=3, fee_bps=100)
    fields.update(overrides)
    return IntentState(**fields)


def payment(amount, *, block=10, tx="0xaa", log_index=0, block_hash=None) -> Payment:
    return Payment(tx_hash=tx, log_index=log_index, amount_base_units=amount, block_number=block,
                   block_hash=block_hash or f"0xblock{block}", sender="0xsender")


def test_happy_path_processing_then_succeeded_with_fee_and_net():
    state = intent()
    assert state.status is IntentStatus.REQUIRES_PAYMENT
    assert state.observe_payment(payment(DUE)) == ["payment_intent.processing"]
    assert state.observe_head(11) == []  # 2 of 3 confirmations
    assert state.observe_head(12) == ["payment_intent.succeeded"]
    assert state.settlement.gross_base_units == DUE
    assert (state.settlement.fee_base_units, state.settlement.net_base_units) == (250_000, 24_750_000)
    assert state.refundable_base_units == 0


def test_same_payment_seen_twice_counts_once():
    state = intent()
    state.observe_payment(payment(10))
    assert state.observe_payment(payment(10)) == []
    assert state.amount_received_base_units == 10


def test_two_transfers_in_one_transaction_are_two_payments():
    state = intent()
    state.observe_payment(payment(DUE // 2, log_index=0))
    state.observe_payment(payment(DUE // 2, log_index=1))
    state.observe_head(12)
    assert state.status is IntentStatus.SUCCEEDED
    assert state.amount_received_base_units == DUE


def test_underpaid_then_topped_up():
    state = intent()
    state.observe_payment(payment(DUE - 1))
    state.observe_head(20)
    assert state.status is IntentStatus.PROCESSING
    assert state.amount_remaining_base_units == 1
    assert state.observe_payment(payment(1, tx="0xbb", block=21)) == []
    assert state.observe_head(23) == ["payment_intent.succeeded"]


def test_overpaid_settles_the_amount_due_and_keeps_the_excess_refundable():
    state = intent()
    state.observe_payment(payment(DUE + 5_000_000))
    state.observe_head(12)
    assert state.settlement.gross_base_units == DUE
    assert state.settlement.excess_base_units == 5_000_000
    assert state.refundable_base_units == 5_000_000


def test_underpaid_at_expiry_is_refundable():
    state = intent()
    state.observe_payment(payment(1_000))
    state.observe_head(12)
    assert state.expire() == ["payment_intent.expired"]
    assert state.status is IntentStatus.EXPIRED
    assert state.refundable_base_units == 1_000
    assert state.expire() == []


def test_payment_after_expiry_is_late_recorded_never_settled():
    state = intent()
    state.expire()
    assert state.observe_payment(payment(DUE)) == ["payment_intent.payment_late"]
    state.observe_head(12)
    assert state.status is IntentStatus.EXPIRED
    assert state.settlement is None
    assert state.refundable_base_units == DUE


def test_cancel_only_while_nothing_received():
    state = intent()
    assert state.cancel() == ["payment_intent.canceled"]
    assert state.cancel() == []
    other = intent()
    other.observe_payment(payment(1))
    with pytest.raises(IntentRuleViolation) as error:
        other.cancel()
    assert error.value.code == "payment_received"


def test_reorg_before_confirmation_goes_back_to_requires_payment():
    state = intent()
    state.observe_payment(payment(DUE, block=10, block_hash="0xold"))
    state.observe_head(11)
    assert state.observe_orphaned_block("0xold") == ["payment_intent.payment_orphaned", "payment_intent.requires_payment"]
    assert state.observe_head(30) == []  # the orphaned payment never confirms
    assert state.status is IntentStatus.REQUIRES_PAYMENT
    # Re-included in the new chain: counts again, from its new block.
    assert state.observe_payment(payment(DUE, block=29, block_hash="0xnew")) == ["payment_intent.processing"]
    assert state.observe_head(40) == ["payment_intent.succeeded"]


def test_payment_still_confirming_at_settlement_becomes_late_and_can_be_orphaned():
    state = intent()
    state.observe_payment(payment(DUE, block=10))
    state.observe_payment(payment(7, tx="0xcc", block=12, block_hash="0xtip"))
    state.observe_head(12)
    assert state.status is IntentStatus.SUCCEEDED
    assert state.settlement.excess_base_units == 0
    assert state.observe_orphaned_block("0xtip") == ["payment_intent.payment_orphaned"]
    assert state.status is IntentStatus.SUCCEEDED
    assert state.refundable_base_units == 0


def test_amount_must_be_positive_integer():
    with pytest.raises(AssertionError):
        intent(amount_due_base_units=0)


def test_posting_templates_balance_and_name_their_steps():
    from domain.payment_intents import Settlement, refundable_moves, settlement_moves, sweep_moves

    moves = settlement_moves("pi_x", Settlement(gross_base_units=DUE, fee_base_units=250_000, net_base_units=24_750_000, excess_base_units=0))
    assert [(m.transfer_id, m.debit_code, m.credit_code, m.amount_base_units, m.transfer_code) for m in moves] == [
        ("pi_x/settle/gross", "customer_deposits", "merchant_available", DUE, "settle"),
        ("pi_x/settle/fee", "merchant_available", "platform_fees", 250_000, "settle"),
    ]
    # Cumulative totals in the ids: a retried step posts the same id; a later one a new id.
    assert [(m.transfer_id, m.amount_base_units) for m in refundable_moves("pi_x", posted_before=5, total=12)] == [("pi_x/refundable/12", 7)]
    assert [(m.transfer_id, m.transfer_code) for m in sweep_moves("pi_x", swept_before=0, total=9)] == [("pi_x/sweep/9", "sweep")]
    with pytest.raises(AssertionError):
        sweep_moves("pi_x", swept_before=9, total=9)


def test_payments_beyond_the_cap_are_counted_and_ignored_never_raised():
    from domain.payment_intents import PAYMENTS_PER_INTENT_MAX

    state = intent()
    for index in range(PAYMENTS_PER_INTENT_MAX):
        state.observe_payment(payment(1, tx=f"0x{index:064x}", block=10))
    assert state.observe_payment(payment(DUE, tx="0xfull", block=11)) == []
    assert state.payments_ignored == 1
    assert len(state.payments) == PAYMENTS_PER_INTENT_MAX
    assert state.amount_received_base_units == PAYMENTS_PER_INTENT_MAX


def test_reorg_below_the_depth_of_a_settled_payment_is_counted_not_raised():
    state = intent()
    state.observe_payment(payment(DUE, block=10, block_hash="0xdeep"))
    state.observe_head(12)
    assert state.status is IntentStatus.SUCCEEDED
    assert state.observe_orphaned_block("0xdeep") == []
    assert state.settled_payments_reorged == 1
    assert state.status is IntentStatus.SUCCEEDED
    assert not next(iter(state.payments.values())).orphaned
