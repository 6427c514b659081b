"""A real local webhook receiver for tests: aiohttp on 127.0.0.1, a free port, in-process.

Each path is one merchant endpoint: it verifies every request with the Standard Webhooks package
against the secrets it was given, records what came (headers, body, which secrets verified), and
answers from a script (status, delay, headers, or hold until released), then 200 once the script
runs out. It can go down (port closed: connection refused) and come back up on the same port.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from cli.processes import free_port


@dataclass
class Reply:
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    # Hold the request until this event is set (or hold_s passes): a receiver that hangs.
    hold: asyncio.Event | None = None
    hold_s: float = 60.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    webhook_id: str | None
    # Index of each secret (in the order given) that verified this request.
    verified_with: list[int]
    verify_errors: list[str]
    status: int
    received_at: float

    @property
    def verified(self) -> bool:
        return bool(self.verified_with)

    @property
    def signatures(self) -> list[str]:
        return self.headers.get("webhook-signature", "").split()


class WebhookReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self._secrets: dict[str, list[str]] = {}
        self._scripts: dict[str, list[Reply]] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> "WebhookReceiver":
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await self.up()
        return self

    async def up(self) -> None:
        assert self._runner is not None and self._site is None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def down(self) -> None:
        """Close the listening socket: new connections are refused."""
        assert self._site is not None
        await self._site.stop()
        self._site = None

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> "WebhookReceiver":
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    # ------------------------------------------------------------------ configuration
    def url(self, path: str, *, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path.lstrip('/')}"

    def expect(self, path: str, *, secrets: list[str], replies: list[Reply] | None = None) -> str:
        """Serve `path` verifying with `secrets`, answering `replies` in order then 200."""
        path = path.lstrip("/")
        self._secrets[path] = list(secrets)
        self._scripts[path] = list(replies or [])
        return self.url(path)

    def set_secrets(self, path: str, secrets: list[str]) -> None:
        self._secrets[path.lstrip("/")] = list(secrets)

    # ------------------------------------------------------------------ reading
    def requests(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path.lstrip("/")]

    def accepted(self, path: str) -> list[Received]:
        """Requests that verified and were answered 2xx: what the merchant processed."""
        return [r for r in self.requests(path) if r.verified and 200 <= r.status < 300]

    async def wait_for(self, predicate, *, timeout_s: float, what: str = "the receiver's condition") -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; received: {self.summary()}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.1))
            except asyncio.TimeoutError:
                pass

    def summary(self) -> list[tuple[str, int, str | None, bool]]:
        return [(r.path, r.status, r.webhook_id, r.verified) for r in self.received]

    # ------------------------------------------------------------------ handling
    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.read()
        headers = {key.lower(): value for key, value in request.headers.items()}
        verified_with, errors = [], []
        for index, secret in enumerate(self._secrets.get(path, [])):
            try:
                Webhook(secret).verify(body, headers)
                verified_with.append(index)
            except WebhookVerificationError as error:
                errors.append(str(error))
        script = self._scripts.setdefault(path, [])
        reply = script.pop(0) if script else Reply()
        record = Received(
            path=path,
            headers=headers,
            body=body,
            webhook_id=headers.get("webhook-id"),
            verified_with=verified_with,
            verify_errors=errors,
            status=reply.status,
            received_at=time.time(),
        )
        self.received.append(record)
        self._changed.set()
        if reply.hold is not None:
            try:
                await asyncio.wait_for(reply.hold.wait(), timeout=reply.hold_s)
            except asyncio.TimeoutError:
                pass
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return web.Response(status=reply.status, text=reply.body, headers=reply.headers)


# ---------------------------------------------------------------------------- the sending side
# What every webhook test needs besides a receiver: its own tenant on its own dispatch route and
# task queue, a worker with the webhook workflows and activities, and a dispatcher.

from contextlib import asynccontextmanager  # noqa: E402
from datetime import timedelta  # noqa: E402

from temporalio.client import Client, WorkflowHandle  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities.webhook_transport import create_webhook_http_client  # noqa: E402
from activities.webhooks import webhook_activities  # noqa: E402
from db.secret_box import SecretBox  # noqa: E402
from db.webhook_deliveries import get_delivery  # noqa: E402
from db.webhook_dispatch import set_dispatch_route  # noqa: E402
from db.webhook_endpoints import create_endpoint  # noqa: E402
from db.settings import WebhookSettings  # noqa: E402
from tests.events import insert_test_event  # noqa: E402
from domain.webhooks import DELIVERY_STATUSES_FINAL  # noqa: E402
from workflows.event_dispatch_workflow import WEBHOOK_WORKFLOWS, EventDispatchInput, EventDispatchWorkflow  # noqa: E402


def fast_settings(**overrides) -> WebhookSettings:
    """The real schedule's shape in fractions of a second, so a real-stack test sees retries."""
    values = dict(
        env="test",
        retry_delays_s=[0.3, 0.3, 0.3, 0.3, 0.3],
        connect_timeout_s=1.0,
        read_timeout_s=2.0,
        request_timeout_s=3.0,
        attempt_heartbeat_timeout_s=2.0,
        dispatch_wait_s=2.0,
        dispatch_poll_interval_s=0.2,
        slot_wait_s=0.5,
    )
    values.update(overrides)
    return WebhookSettings(**values)


@dataclass
class WebhookTestBed:
    client: Client
    pool: object
    tenant_id: str
    route: str
    task_queue: str
    settings: WebhookSettings
    dispatcher: WorkflowHandle | None = None

    @property
    def secret_box(self) -> SecretBox:
        return SecretBox(self.settings.secret_encryption_keys())

    async def create_endpoint(self, url: str, *, events: list[str] | None = None, tenant_id: str | None = None):
        return await create_endpoint(
            self.pool,
            secret_box=self.secret_box,
            url_policy=fast_settings().url_policy,  # tests register local URLs; sending applies self.settings
            tenant_id=tenant_id or self.tenant_id,
            url=url,
            enabled_events=events or ["*"],
        )

    async def insert_event(self, *, event_type: str = "payment_intent.succeeded", data: dict | None = None, tenant_id: str | None = None) -> str:
        return await insert_test_event(self.pool, tenant_id=tenant_id or self.tenant_id, event_type=event_type, data=data)

    async def add_tenant(self, tenant_id: str) -> None:
        await set_dispatch_route(self.pool, tenant_id=tenant_id, route=self.route)

    async def wait_delivery(self, delivery_id: str, *, timeout_s: float, tenant_id: str | None = None, final: bool = True):
        deadline = time.monotonic() + timeout_s
        delivery = None
        while time.monotonic() < deadline:
            try:
                delivery = await get_delivery(self.pool, tenant_id=tenant_id or self.tenant_id, delivery_id=delivery_id)
            except LookupError:
                delivery = None
            if delivery is not None and (not final or delivery.status in DELIVERY_STATUSES_FINAL):
                return delivery
            await asyncio.sleep(0.05)
        raise AssertionError(f"delivery {delivery_id} not final after {timeout_s}s: {delivery}")

    async def start_dispatcher(self, **options) -> WorkflowHandle:
        options.setdefault("wait_s", self.settings.dispatch_wait_s)
        options.setdefault("heartbeat_timeout_s", 3.0)
        self.dispatcher = await self.client.start_workflow(
            EventDispatchWorkflow.run,
            EventDispatchInput(route=self.route, **options),
            id=f"webhook-dispatch-{self.route}",
            task_queue=self.task_queue,
        )
        return self.dispatcher

    async def stop_dispatcher(self) -> None:
        if self.dispatcher is not None:
            try:
                await self.dispatcher.terminate(reason="test over")
            except Exception:  # noqa: BLE001 - already closed
                pass
            self.dispatcher = None


@asynccontextmanager
async def webhook_worker(client: Client, pool, *, task_queue: str, settings: WebhookSettings, **worker_options):
    http_client = create_webhook_http_client(settings)
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=WEBHOOK_WORKFLOWS,
            activities=webhook_activities(pool, http_client, settings=settings),
            graceful_shutdown_timeout=timedelta(seconds=1),
            **worker_options,
        ) as worker:
            yield worker
    finally:
        await http_client.aclose()


@asynccontextmanager
async def webhook_test_bed(client: Client, pool, *, unique_id: str, settings: WebhookSettings | None = None, dispatcher: bool = True, **worker_options):
    """A tenant on its own route, a worker on a fresh task queue and (by default) a dispatcher."""
    settings = settings or fast_settings()
    bed = WebhookTestBed(
        client=client,
        pool=pool,
        tenant_id=f"ten_wh{unique_id}",
        route=f"test-{unique_id}",
        task_queue=f"test-webhooks-{unique_id}",
        settings=settings,
    )
    await bed.add_tenant(bed.tenant_id)
    async with webhook_worker(client, pool, task_queue=bed.task_queue, settings=settings, **worker_options):
        if dispatcher:
            await bed.start_dispatcher()
        try:
            yield bed
        finally:
            await bed.stop_dispatcher()
