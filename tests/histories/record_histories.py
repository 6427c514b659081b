"""Records the histories tests/workflows/test_replay.py replays: every workflow type of the worker,
driven through its main paths on the real local stack (the test session's own, tests/conftest.py),
written under tests/histories/<workflow type>/<case>-<label>.json.

Not part of the suite (its name is not test_*.py, so pytest collects it only when named):
`scripts/record_histories` runs it when a workflow changed on purpose. The label (environment
SETTLE_HISTORY_LABEL, default today's date) keeps earlier recordings beside the new ones: a patched
workflow must still replay the histories its old code wrote while runs of that code can be open.

Histories of long-running workflows (watcher, sweeper, dispatcher) and of intents in their late
window are fetched while they run: a partial history replays as well as a closed one.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from domain.webhooks import delivery_id_for
from tests.histories.store import history_files, replayer, workflow_type_name, write_history
from tests.webhooks_receiver import Reply, WebhookReceiver, webhook_test_bed
from tests.workflows.test_payment_intent_workflow import _input, _wait_view
from tests.workflows.test_refund_workflow import (  # noqa: F401 - `refunds` is the fixture this module runs on
    DUE,
    _customer,
    _eventually,
    _final,
    _merchant,
    _paid_intent,
    _pay,
    _refund,
    refunds,
)
from worker.main import WORKFLOWS
from workflows.chain_watcher_workflow import ChainWatcherWorkflow, watcher_workflow_id
from workflows.hello_workflow import HelloInput, HelloWorkflow
from workflows.payment_intent_workflow import PaymentIntentWorkflow, start_payment_intent
from workflows.sweeper_workflow import SweeperWorkflow, sweeper_workflow_id

EXPIRING_IN_S = 90
LABEL = os.environ.get("SETTLE_HISTORY_LABEL") or datetime.now(timezone.utc).strftime("%Y%m%d")


async def _record(handle: WorkflowHandle, case: str) -> None:
    """Write the workflow's history so far, after checking it is one worth keeping: no workflow
    task failed in it, and the code that wrote it replays it."""
    history = await handle.fetch_history()
    failed = [event.event_id for event in history.events if event.HasField("workflow_task_failed_event_attributes")]
    assert not failed, f"{handle.id}: workflow tasks failed at events {failed}; a history to replay must not hold them"
    await replayer().replay_workflow(history)
    path = write_history(history, case=case, label=LABEL)
    print(f"recorded {path} ({len(history.events)} events)")


async def test_hello(refunds, temporal_client):
    handle = await temporal_client.start_workflow(
        HelloWorkflow.run,
        HelloInput(chain_id=refunds.settings.chain_id, pause_s=0.5),  # the pause: its timer is in the history
        id=f"hello-{uuid.uuid4().hex[:12]}",
        task_queue=refunds.settings.task_queue,
    )
    assert (await handle.result()).row_inserted
    await _record(handle, "completed")


async def _api_intent(refunds, merchant, **body) -> dict:
    """An intent created as merchants create them: the API computes its deposit address and starts
    its workflow with it."""
    response = await refunds.http.post(
        "/v1/payment_intents", json={"amount": str(DUE), "asset": "usdc", **body}, headers=merchant.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _settled(refunds, temporal_client, db_pool, private_chain, intent: dict, *, status: str, swept: int) -> WorkflowHandle:
    """The intent reached `status` (blocks mined meanwhile, for its confirmations) and the sweeper
    moved `swept` of it to the treasury."""
    handle = temporal_client.get_workflow_handle(intent["id"])

    async def reached():
        return (await handle.query(PaymentIntentWorkflow.view)).status == status

    async def swept_all():
        return int(await db_pool.fetchval("SELECT amount_swept FROM payment_intents WHERE id = $1", intent["id"]) or 0) == swept

    await _eventually(reached, what=f"intent {status}", private_chain=private_chain, timeout_s=90)
    await _eventually(swept_all, what="intent swept", timeout_s=60)
    return handle


async def test_payment_intents_and_refunds(refunds, private_chain, temporal_client, db_pool):
    """Intents paid and succeeded, overpaid, expired then paid late, canceled, refused at creation;
    refunds that succeed and that fail for want of balance."""
    merchant = await _merchant(refunds)
    # Started first: its expiry (the API allows no less than a minute) passes while the other paths
    # run. Paid only after them: an underpaid intent is told of every new block until it expires,
    # and the blocks those paths mine would fill its history with signals.
    expiring = await _api_intent(refunds, merchant, expires_in=EXPIRING_IN_S)

    paid = await _api_intent(refunds, merchant)
    _pay(private_chain, asset="usdc", to=paid["deposit_address"], amount=DUE)
    await _record(await _settled(refunds, temporal_client, db_pool, private_chain, paid, status="succeeded", swept=DUE), "succeeded")
    # The merchant earned 24.75 of the 25.00: refunding the whole payment from its balance fails.
    short = await _refund(refunds, merchant, paid["id"], amount=str(DUE), address=_customer())
    assert short.status_code == 201, short.text
    assert (await _final(refunds, merchant, short.json()["id"]))["failure_code"] == "insufficient_balance"
    await _record(temporal_client.get_workflow_handle(short.json()["id"]), "failed_insufficient_balance")

    overpaid = await _api_intent(refunds, merchant)
    _pay(private_chain, asset="usdc", to=overpaid["deposit_address"], amount=DUE + 5_000_000)
    handle = await _settled(refunds, temporal_client, db_pool, private_chain, overpaid, status="succeeded", swept=DUE + 5_000_000)
    await _record(handle, "overpaid")
    excess = await _refund(refunds, merchant, overpaid["id"], amount="5000000", address=_customer(), reason="overpayment")
    assert excess.status_code == 201, excess.text
    assert (await _final(refunds, merchant, excess.json()["id"]))["status"] == "succeeded"
    await _record(temporal_client.get_workflow_handle(excess.json()["id"]), "succeeded")

    canceled = await _api_intent(refunds, merchant)
    response = await refunds.http.post(f"/v1/payment_intents/{canceled['id']}/cancel", headers=merchant.headers)
    assert response.status_code == 200 and response.json()["status"] == "canceled", response.text
    await _record(temporal_client.get_workflow_handle(canceled["id"]), "canceled")

    # Intents started before the API computed deposit addresses still assign theirs in an activity.
    legacy = await _paid_intent(refunds, temporal_client, db_pool, private_chain, merchant, paid=DUE)
    await _record(temporal_client.get_workflow_handle(legacy.intent_id), "succeeded_deposit_assigned_by_activity")

    refused = _input(refunds.settings)
    refused.description = "a NUL \x00 byte"  # PostgreSQL refuses it: the creation fails, the workflow closes
    with pytest.raises(WorkflowUpdateFailedError):
        await start_payment_intent(temporal_client, refused, task_queue=refunds.settings.task_queue)
    await _record(temporal_client.get_workflow_handle(refused.intent_id), "registration_failed")

    handle = temporal_client.get_workflow_handle(expiring["id"])
    assert (await handle.query(PaymentIntentWorkflow.view)).status == "requires_payment", "the other paths outlasted its expiry"
    _pay(private_chain, asset="usdc", to=expiring["deposit_address"], amount=1_000)
    await _wait_view(handle, lambda v: v.status == "expired", timeout_s=EXPIRING_IN_S)
    _pay(private_chain, asset="usdc", to=expiring["deposit_address"], amount=2_000)  # in the late window
    await _wait_view(handle, lambda v: [p.late for p in v.payments] == [False, True] and v.amount_refundable == "3000")
    await _record(handle, "expired_then_paid_late")


async def test_chain_watcher_and_sweeper(refunds, temporal_client):
    """After the intents above: the sweeper has swept batches; the watcher has finished at least
    one long poll (each lasts a minute) and started the next."""
    sweeper = temporal_client.get_workflow_handle(sweeper_workflow_id(refunds.settings.chain_id))
    assert (await sweeper.query(SweeperWorkflow.state)).batches_sent >= 1
    await _record(sweeper, "batches_swept")
    watcher = temporal_client.get_workflow_handle(watcher_workflow_id(refunds.settings.chain_id))

    async def runs_done():
        state = await watcher.query(ChainWatcherWorkflow.state)
        return state is not None and state.activity_runs >= 1 and state.payments_seen >= 1

    await _eventually(runs_done, what="the watcher's first long poll done", timeout_s=150)
    await _record(watcher, "payments_seen")


async def test_webhook_dispatch_and_delivery(temporal_client, db_pool, unique_id):
    """A delivery that fails once (a 500) and is retried on its timer, and the dispatcher that
    started it."""
    async with WebhookReceiver() as receiver, webhook_test_bed(temporal_client, db_pool, unique_id=unique_id) as bed:
        created = await bed.create_endpoint(receiver.url("orders"))
        receiver.expect("orders", secrets=[created.secret], replies=[Reply(500, body="boom")])
        event_id = await bed.insert_event()
        delivery_id = delivery_id_for(event_id=event_id, endpoint_id=created.endpoint.id)
        delivery = await bed.wait_delivery(delivery_id, timeout_s=30)
        assert delivery.attempts_count == 2, delivery
        delivery_handle = temporal_client.get_workflow_handle(delivery_id)
        await delivery_handle.result()
        await _record(delivery_handle, "delivered_after_a_retry")
        assert bed.dispatcher is not None
        await _record(bed.dispatcher, "one_event_dispatched")


def test_every_workflow_type_was_recorded():
    """A workflow added to the worker needs a case in this module (the replay test fails for want
    of its history); this says so at recording time."""
    recorded = {path.parent.name for path in history_files() if path.stem.endswith(f"-{LABEL}")}
    missing = {workflow_type_name(cls) for cls in WORKFLOWS} - recorded
    assert not missing, f"no history recorded for {sorted(missing)}: add a case to tests/histories/record_histories.py"

