"""Webhook delivery throughput and latency against a local receiver, next to a bare httpx POST
baseline measured in the same run.

    python bench/webhooks.py [--events 200] [--endpoints 2] [--json]

Without --database-url/--temporal-address it brings up a private stack (PostgreSQL, Temporal,
anvil; no worker, no API) in a temporary directory and stops it at the end. It runs an in-process
worker with the webhook workflows and activities (default settings), a dispatcher, and an aiohttp
receiver on 127.0.0.1 that verifies every request with the Standard Webhooks package.

- latency: `--latency-events` events inserted one by one at `--rate` per second, each fanned out
  to every endpoint; from the event's `created_at` to the receiver answering 2xx. p50/p95.
- throughput: `--events` events inserted in one transaction (a burst), deliveries per second from
  the commit to the last 2xx.
- baseline: the same number of POSTs with the same body, straight from httpx with the same
  concurrency bound the worker gives one endpoint, requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from aiohttp import web  # noqa: E402
from standardwebhooks import Webhook  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities.webhook_transport import create_webhook_http_client  # noqa: E402
from activities.webhooks import webhook_activities  # noqa: E402
from cli.processes import free_port  # noqa: E402
from db.events import NewEvent, insert_events  # noqa: E402
from db.migrate import upgrade_to_heads  # noqa: E402
from db.pool import create_pool  # noqa: E402
from db.secret_box import SecretBox  # noqa: E402
from db.webhook_dispatch import set_dispatch_route  # noqa: E402
from db.webhook_endpoints import create_endpoint  # noqa: E402
from db.settings import WebhookSettings  # noqa: E402
from domain.events import EventType, intent_event_id  # noqa: E402
from workflows.event_dispatch_workflow import WEBHOOK_WORKFLOWS, EventDispatchInput, EventDispatchWorkflow  # noqa: E402

EVENT_DATA = {"id": "pi_bench", "object": "payment_intent", "amount": "1000000", "currency": "usdc", "status": "succeeded"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(int(round(fraction * (len(ordered) - 1))), len(ordered) - 1)
    return ordered[index]


class Receiver:
    """Verifies every webhook, remembers when each (event, path) was first answered 2xx."""

    def __init__(self) -> None:
        self.port = free_port()
        self.secrets: dict[str, Webhook] = {}
        self.delivered_at: dict[tuple[str, str], float] = {}
        self.unverified = 0
        self.baseline_requests = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.read()
        if path == "baseline":
            self.baseline_requests += 1
            return web.Response(text="ok")
        try:
            self.secrets[path].verify(body, dict(request.headers))
        except Exception:  # noqa: BLE001 - counted, answered 400
            self.unverified += 1
            return web.Response(status=400, text="bad signature")
        self.delivered_at.setdefault((request.headers["webhook-id"], path), time.time())
        return web.Response(text="ok")


async def write_events(pool, *, tenant_id: str, count: int, one_transaction: bool) -> dict[str, datetime]:
    """`count` events as the workflows write them (db.events), each in its own transaction or all
    in one (a burst the dispatcher sees at once); their creation times by id."""
    events = [
        NewEvent(
            id=intent_event_id(intent_id=f"pi_{uuid.uuid4().hex[:20]}", sequence=1), tenant_id=tenant_id,
            type=EventType.PAYMENT_INTENT_SUCCEEDED, object_id="pi_bench", data=EVENT_DATA,
        )
        for _ in range(count)
    ]
    batches = [events] if one_transaction else [[event] for event in events]
    created: dict[str, datetime] = {}
    for batch in batches:
        async with pool.acquire() as connection, connection.transaction():
            created.update({event.id: event.created_at for event in await insert_events(connection, events=batch)})
    return created


async def wait_delivered(receiver: Receiver, keys: list[tuple[str, str]], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(key in receiver.delivered_at for key in keys):
        if time.monotonic() > deadline:
            missing = sum(1 for key in keys if key not in receiver.delivered_at)
            raise SystemExit(f"{missing} of {len(keys)} deliveries missing after {timeout_s}s")
        await asyncio.sleep(0.01)


async def baseline(receiver: Receiver, *, requests: int, concurrency: int, body: bytes) -> float:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency), timeout=10.0) as client:

        async def post() -> None:
            async with gate:
                response = await client.post(f"http://127.0.0.1:{receiver.port}/baseline", content=body, headers={"content-type": "application/json"})
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(post() for _ in range(requests)))
        return requests / (time.perf_counter() - started)


async def run(args: argparse.Namespace, *, database_url: str, temporal_address: str) -> dict:
    await upgrade_to_heads(database_url)
    settings = WebhookSettings(env="local", dispatch_wait_s=5.0, dispatch_poll_interval_s=0.5)
    unique = uuid.uuid4().hex[:10]
    tenant_id, route, task_queue = f"ten_bench{unique}", f"bench-{unique}", f"bench-webhooks-{unique}"
    async with AsyncExitStack() as stack:
        pool = await create_pool(database_url, size_max=20)
        stack.push_async_callback(pool.close)
        client = await Client.connect(temporal_address)
        receiver = Receiver()
        await receiver.start()
        stack.push_async_callback(receiver.stop)
        await set_dispatch_route(pool, tenant_id=tenant_id, route=route)
        box = SecretBox(settings.secret_encryption_keys())
        paths = []
        for index in range(args.endpoints):
            path = f"endpoint{index}"
            created = await create_endpoint(
                pool,
                secret_box=box,
                url_policy=settings.url_policy,
                tenant_id=tenant_id,
                url=f"http://127.0.0.1:{receiver.port}/{path}",
                enabled_events=["*"],
            )
            receiver.secrets[path] = Webhook(created.secret)
            paths.append(path)
        http_client = create_webhook_http_client(settings)
        stack.push_async_callback(http_client.aclose)
        worker = Worker(
            client, task_queue=task_queue, workflows=WEBHOOK_WORKFLOWS, activities=webhook_activities(pool, http_client, settings=settings)
        )
        await stack.enter_async_context(worker)
        dispatcher = await client.start_workflow(
            EventDispatchWorkflow.run,
            EventDispatchInput(route=route, wait_s=settings.dispatch_wait_s),
            id=f"webhook-dispatch-{route}",
            task_queue=task_queue,
        )
        try:
            # Warm up: connections, caches, the first workflow tasks.
            warm = await write_events(pool, tenant_id=tenant_id, count=5, one_transaction=False)
            await wait_delivered(receiver, [(e, p) for e in warm for p in paths], timeout_s=60)

            log(f"latency: {args.latency_events} events at {args.rate}/s to {args.endpoints} endpoints")
            latencies: list[float] = []
            created_at: dict[str, datetime] = {}
            interval_s = 1.0 / args.rate
            for _ in range(args.latency_events):
                started = time.perf_counter()
                created_at.update(await write_events(pool, tenant_id=tenant_id, count=1, one_transaction=False))
                await asyncio.sleep(max(interval_s - (time.perf_counter() - started), 0))
            keys = [(e, p) for e in created_at for p in paths]
            await wait_delivered(receiver, keys, timeout_s=120)
            latencies = [receiver.delivered_at[(e, p)] - created_at[e].timestamp() for e, p in keys]

            log(f"throughput: a burst of {args.events} events to {args.endpoints} endpoints")
            burst = await write_events(pool, tenant_id=tenant_id, count=args.events, one_transaction=True)
            committed = time.time()
            keys = [(e, p) for e in burst for p in paths]
            await wait_delivered(receiver, keys, timeout_s=600)
            elapsed_s = max(receiver.delivered_at[key] for key in keys) - committed
            burst_latencies = [receiver.delivered_at[(e, p)] - burst[e].timestamp() for e, p in keys]
        finally:
            await dispatcher.terminate(reason="bench over")
        body = json.dumps({"id": "evt_x", "object": "event", "type": "payment_intent.succeeded", "data": {"object": EVENT_DATA}}).encode()
        log("baseline: bare httpx POSTs")
        baseline_per_s = await baseline(
            receiver, requests=len(keys), concurrency=settings.endpoint_requests_max * args.endpoints, body=body
        )
        if receiver.unverified:
            raise SystemExit(f"{receiver.unverified} webhooks failed verification")
    return {
        "deliveries_per_s": round(len(keys) / elapsed_s, 1),
        "baseline_per_s": round(baseline_per_s, 1),
        "latency_p50_s": round(statistics.median(latencies), 4),
        "latency_p95_s": round(percentile(latencies, 0.95), 4),
        "burst_latency_p50_s": round(statistics.median(burst_latencies), 4),
        "burst_latency_p95_s": round(percentile(burst_latencies, 0.95), 4),
        "deliveries": len(keys),
        "latency_deliveries": len(latencies),
        "endpoints": args.endpoints,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200, help="events in the throughput burst")
    parser.add_argument("--endpoints", type=int, default=2, help="endpoints each event goes to")
    parser.add_argument("--latency-events", type=int, default=50)
    # Kept below what one worker and the dev server sustain, so the latency measured is a
    # delivery's, not a queue's (the burst's latency is printed beside it).
    parser.add_argument("--rate", type=float, default=5.0, help="events per second in the latency phase")
    parser.add_argument("--database-url", default=os.environ.get("SETTLE_DATABASE_URL"))
    parser.add_argument("--temporal-address", default=os.environ.get("SETTLE_TEMPORAL_ADDRESS"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    assert 1 <= args.endpoints <= 16 and args.events >= 1 and args.latency_events >= 1 and args.rate > 0
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("RUST_LOG", "error")

    stack = None
    database_url, temporal_address = args.database_url, args.temporal_address
    if not (database_url and temporal_address):
        from cli.stack import Stack

        state_dir = Path(tempfile.mkdtemp(prefix="settle-bench-"))
        os.chmod(state_dir, 0o755)  # under root, PostgreSQL's unprivileged user must enter it
        stack = Stack(state_dir=state_dir, with_api=False, with_worker=False, database_url_override=database_url)
        log(f"starting a private stack in {state_dir}")
        described = stack.up()
        database_url, temporal_address = described["database_url"], described["temporal_address"]
    try:
        result = asyncio.run(run(args, database_url=database_url, temporal_address=temporal_address))
    finally:
        if stack is not None:
            postgres_dir = stack.load_state().get("services", {}).get("postgres", {}).get("data_dir")
            stack.down()
            shutil.rmtree(stack.state_dir, ignore_errors=True)
            if postgres_dir and not Path(postgres_dir).is_relative_to(stack.state_dir):
                shutil.rmtree(Path(postgres_dir).parent, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"webhooks: {result['deliveries_per_s']:.1f} deliveries/s ({result['deliveries']} deliveries, {args.endpoints} endpoints)\n"
            f"baseline: {result['baseline_per_s']:.1f} POST/s (bare httpx, same receiver, same concurrency)\n"
            f"event -> 2xx: p50 {result['latency_p50_s'] * 1000:.1f} ms, p95 {result['latency_p95_s'] * 1000:.1f} ms "
            f"(one event every {1000 / args.rate:.0f} ms)\n"
            f"event -> 2xx in the burst: p50 {result['burst_latency_p50_s']:.2f} s, p95 {result['burst_latency_p95_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
