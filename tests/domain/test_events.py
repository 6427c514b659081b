"""The one serializer of merchant-facing objects (API answers and event payloads): one form for
amounts, addresses and timestamps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from domain.events import (
    EventType,
    PaymentFacts,
    checksum_address,
    intent_event_id,
    intent_late_payment_event_id,
    intent_status_event_type,
    intent_swept_event_id,
    payment_intent_object,
    refund_event_id,
    refund_object,
    utc_timestamp,
    webhook_endpoint_event_id,
    webhook_endpoint_object,
)
from domain.payment_intents import IntentStatus
from domain.refunds import RefundStatus

TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
TOKEN_EIP55 = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DEPOSIT = "0xdd090c50277e79fe05e0e4f3b4121a4e83f6220c"
DEPOSIT_EIP55 = "0xdD090C50277e79Fe05e0E4f3b4121a4E83F6220c"
CREATED = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


def _payment(block_number: int, log_index: int = 0, **changes) -> PaymentFacts:
    fields = dict(
        tx_hash="0x" + "AB" * 32, log_index=log_index, amount_base_units=1_000, block_number=block_number,
        block_hash="0x" + "CD" * 32, confirmations=2, orphaned=False, late=False,
    )
    fields.update(changes)
    return PaymentFacts(**fields)


def _intent(**changes) -> dict:
    fields = dict(
        id="pi_" + "a" * 24, status="requires_payment", amount_base_units=2_500_000, amount_received_base_units=0,
        amount_refundable_base_units=0, amount_refunded_base_units=0, amount_swept_base_units=0, fee_base_units=None,
        net_base_units=None, fee_bps=100, asset="usdc", chain_id=31337, token_address=TOKEN, deposit_address=DEPOSIT,
        confirmations_required=3, description=None, metadata={"order": "42"}, success_url=None, cancel_url=None, notify_url=None,
        expires_at=CREATED + timedelta(hours=1), created_at=CREATED, payments=[],
    )
    fields.update(changes)
    return payment_intent_object(**fields)


# ---------------------------------------------------------------------------- types and ids
def test_every_status_an_intent_or_a_refund_reaches_has_its_event_type():
    assert {intent_status_event_type(status) for status in IntentStatus} <= set(EventType)
    assert {EventType(f"refund.{status}") for status in RefundStatus if status != RefundStatus.PENDING} <= set(EventType)
    assert intent_status_event_type(IntentStatus.SUCCEEDED) is EventType.PAYMENT_INTENT_SUCCEEDED
    with pytest.raises(ValueError):
        intent_status_event_type("settled")


def test_event_ids_keep_the_form_already_stored():
    # Stored ids, and the workflow's own (part of running workflows' state), must never change form.
    assert intent_event_id(intent_id="pi_Ab12", sequence=7) == "evt_Ab12_0007"
    assert intent_event_id(intent_id="pi_Ab12", sequence=12345) == "evt_Ab12_12345"
    assert intent_swept_event_id(intent_id="pi_Ab12", swept_total_base_units=25_000_000) == "evt_Ab12_swept_25000000"
    assert (
        intent_late_payment_event_id(intent_id="pi_Ab12", tx_hash="0x" + "0123456789abcdef" * 4, log_index=3)
        == "evt_Ab12_late_0123456789abcdef_3"
    )
    assert refund_event_id(refund_id="re_abc", status="succeeded") == "evt_re_abc_succeeded"
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    failing = webhook_endpoint_event_id(endpoint_id="we_1", event_type=EventType.WEBHOOK_ENDPOINT_FAILING, at=at)
    assert failing == "evt_20cacb0de690b018549856c3"
    assert failing != webhook_endpoint_event_id(endpoint_id="we_1", event_type=EventType.WEBHOOK_ENDPOINT_FAILING, at=at + timedelta(seconds=1))
    assert failing != webhook_endpoint_event_id(endpoint_id="we_1", event_type=EventType.WEBHOOK_ENDPOINT_DISABLED, at=at)
    with pytest.raises(AssertionError):
        intent_event_id(intent_id="pi_Ab12", sequence=0)


# ---------------------------------------------------------------------------- values
def test_timestamps_are_utc_with_a_z():
    assert utc_timestamp(CREATED) == "2030-01-02T03:04:05.123456Z"
    assert utc_timestamp(CREATED.replace(microsecond=0)) == "2030-01-02T03:04:05Z"
    assert utc_timestamp(CREATED.astimezone(timezone(timedelta(hours=-5)))) == "2030-01-02T03:04:05.123456Z"
    with pytest.raises(AssertionError):
        utc_timestamp(datetime(2030, 1, 2))


class _Stamp(BaseModel):
    at: datetime


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.just(timezone.utc)))
def test_timestamps_are_the_form_the_apis_models_give(moment):
    # Every other timestamp the API shows goes through pydantic: one format for a client to parse,
    # and a model field re-serialising our string changes nothing.
    assert utc_timestamp(moment) == _Stamp(at=moment).model_dump(mode="json")["at"]
    assert _Stamp(at=utc_timestamp(moment)).model_dump(mode="json")["at"] == utc_timestamp(moment)


def test_evm_addresses_are_eip55_whatever_case_they_were_stored_in():
    assert checksum_address(TOKEN) == TOKEN_EIP55
    assert checksum_address(TOKEN.upper().replace("0X", "0x")) == TOKEN_EIP55
    assert checksum_address(TOKEN_EIP55) == TOKEN_EIP55
    tron = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"
    assert checksum_address(tron) == tron


# ---------------------------------------------------------------------------- payment intents
def test_a_new_intent_shows_zero_amounts_as_strings_and_no_fee_yet():
    intent = _intent()
    assert intent["object"] == "payment_intent"
    for field in ("amount_received", "amount_refundable", "amount_refunded", "amount_swept"):
        assert intent[field] == "0", field
    assert intent["amount"] == intent["amount_remaining"] == "2500000"
    assert intent["fee"] is None and intent["net"] is None
    assert intent["expires_at"] == "2030-01-02T04:04:05.123456Z" and intent["created_at"] == "2030-01-02T03:04:05.123456Z"


def test_addresses_and_the_payment_uri_are_checksummed():
    intent = _intent()
    assert intent["token_address"] == TOKEN_EIP55 and intent["deposit_address"] == DEPOSIT_EIP55
    assert intent["payment_uri"] == f"ethereum:{TOKEN_EIP55}@31337/transfer?address={DEPOSIT_EIP55}&uint256=2500000"
    assert _intent(token_address=TOKEN_EIP55, deposit_address=DEPOSIT_EIP55) == intent


def test_a_succeeded_intent_shows_fee_net_and_payments_in_chain_order():
    payments = [_payment(12, 1), _payment(11, 0, orphaned=True), _payment(12, 0, confirmations=None, late=True)]
    intent = _intent(
        status="succeeded", amount_received_base_units=3_000_000, fee_base_units=25_000, net_base_units=2_475_000,
        amount_swept_base_units=3_000_000, payments=payments,
    )
    assert intent["amount_remaining"] == "0" and intent["fee"] == "25000" and intent["net"] == "2475000"
    assert [(p["block_number"], p["log_index"]) for p in intent["payments"]] == [(11, 0), (12, 0), (12, 1)]
    first = intent["payments"][0]
    assert first == {
        "tx_hash": "0x" + "ab" * 32, "log_index": 0, "amount": "1000", "block_number": 11, "block_hash": "0x" + "cd" * 32,
        "confirmations": 2, "orphaned": True, "late": False,
    }
    assert intent["payments"][1]["confirmations"] is None and intent["payments"][1]["late"]


def test_money_is_never_negative_or_a_float():
    with pytest.raises(AssertionError):
        _intent(amount_swept_base_units=-1)
    with pytest.raises(AssertionError):
        _intent(amount_refunded_base_units=1.0)


# ---------------------------------------------------------------------------- refunds
def test_a_refund_in_the_same_forms():
    refund = refund_object(
        id="re_1", intent_id="pi_1", status="succeeded", amount_base_units=5_000, amount_from_refundable_base_units=5_000,
        amount_from_balance_base_units=0, asset="usdc", chain_id=31337, token_address=TOKEN, address=DEPOSIT,
        tx_hash="0x" + "EF" * 32, failure_code=None, failure_message=None, reason="overpayment", metadata={},
        created_at=CREATED, updated_at=CREATED.replace(microsecond=0),
    )
    assert refund["object"] == "refund" and refund["payment_intent"] == "pi_1"
    assert refund["amount_from_balance"] == "0" and refund["amount"] == "5000"
    assert refund["token_address"] == TOKEN_EIP55 and refund["address"] == DEPOSIT_EIP55 and refund["tx_hash"] == "0x" + "ef" * 32
    assert refund["created_at"] == "2030-01-02T03:04:05.123456Z" and refund["updated_at"] == "2030-01-02T03:04:05Z"


# ---------------------------------------------------------------------------- webhook endpoints
def test_an_endpoint_in_the_form_its_events_have_always_had():
    endpoint = webhook_endpoint_object(
        id="we_1", url="https://hooks.example.com/settle", description="orders", enabled_events=("*",), status="disabled",
        disabled_reason="gone", health="failing", failing_since=CREATED, created_at=CREATED,
    )
    assert endpoint == {
        "id": "we_1", "object": "webhook_endpoint", "url": "https://hooks.example.com/settle", "description": "orders",
        "enabled_events": ["*"], "status": "disabled", "disabled_reason": "gone", "health": "failing",
        "failing_since": "2030-01-02T03:04:05.123456+00:00", "created": int(CREATED.timestamp()),
    }
