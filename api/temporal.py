"""The API's Temporal client. Connected in the background (`TemporalConnector`): while Temporal is
unreachable the app still serves everything else, and the services that need it raise
`Unavailable` (answered 503)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from api.services.errors import Unavailable
from db.settings import Settings

logger = logging.getLogger("settle.api")

TEMPORAL_CONNECT_TIMEOUT_S = 5.0
TEMPORAL_RETRY_INTERVAL_S = 2.0
TEMPORAL_WAIT_S = 5.0
UNAVAILABLE_MESSAGE = "Payment intents are unavailable for a moment: the workflow engine cannot be reached. Retry later."


class TemporalConnector:
    """The API's Temporal client: injected, or connected in the background and retried until it
    succeeds. `await get()` waits briefly for a connection, then raises `Unavailable`."""

    def __init__(self, settings: Settings, *, client: Any | None = None) -> None:
        self._settings = settings
        self.client = client
        self._task: asyncio.Task | None = None
        self._connected: asyncio.Event | None = None

    def start(self) -> None:
        self._connected = asyncio.Event()
        if self.client is not None:
            self._connected.set()
            return
        self._task = asyncio.create_task(self._connect_until_connected(), name="temporal-connect")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _connect_until_connected(self) -> None:
        from temporalio.client import Client

        assert self._connected is not None
        while self.client is None:
            try:
                self.client = await asyncio.wait_for(
                    Client.connect(self._settings.temporal_address, namespace=self._settings.temporal_namespace),
                    timeout=TEMPORAL_CONNECT_TIMEOUT_S,
                )
                self._connected.set()
                return
            except Exception:  # noqa: BLE001 - unreachable, refused, timed out: retry
                logger.warning("Temporal unreachable at %s; will retry", self._settings.temporal_address)
                await asyncio.sleep(TEMPORAL_RETRY_INTERVAL_S)

    async def get(self, *, message: str = UNAVAILABLE_MESSAGE) -> Any:
        if self.client is None and self._connected is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._connected.wait()), timeout=TEMPORAL_WAIT_S)
        if self.client is None:
            raise Unavailable(message)
        return self.client
