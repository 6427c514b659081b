"""Bounded concurrency per webhook endpoint, per worker process: one slow endpoint holds a few
activity slots at most and never delays another tenant's deliveries."""

from __future__ import annotations

import asyncio
import collections
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator


class EndpointSlots:
    """At most `running_max` requests in flight per endpoint, and `waiting_max` attempts waiting
    for one of them; everyone else is told to come back later (the workflow waits on a durable
    timer, holding no worker slot). Waiters are served in arrival order. Per worker process."""

    @dataclass
    class _State:
        running: int = 0
        waiters: collections.deque = field(default_factory=collections.deque)

    def __init__(self, *, running_max: int, waiting_max: int) -> None:
        assert running_max >= 1 and waiting_max >= 0
        self._running_max = running_max
        self._waiting_max = waiting_max
        self._states: dict[str, EndpointSlots._State] = {}

    def running(self, key: str) -> int:
        state = self._states.get(key)
        return state.running if state else 0

    async def acquire(self, key: str, *, wait_s: float) -> bool:
        state = self._states.setdefault(key, self._State())
        if state.running < self._running_max and not state.waiters:
            state.running += 1
            return True
        if len(state.waiters) >= self._waiting_max or wait_s <= 0:
            self._forget_if_idle(key)
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=wait_s)
        except BaseException:
            # Cancelled while waiting: a slot handed over in the meantime goes back.
            if waiter.done() and not waiter.cancelled():
                self.release(key)
            else:
                waiter.cancel()
                self._discard(key, waiter)
            raise
        if waiter.done() and not waiter.cancelled():
            return True
        waiter.cancel()
        self._discard(key, waiter)
        return False

    def release(self, key: str) -> None:
        state = self._states[key]
        while state.waiters:
            waiter = state.waiters.popleft()
            if not waiter.done():
                # The slot passes to the waiter: `running` stays as it is.
                waiter.set_result(None)
                return
        state.running -= 1
        assert state.running >= 0
        self._forget_if_idle(key)

    def _discard(self, key: str, waiter: asyncio.Future) -> None:
        state = self._states.get(key)
        if state is not None:
            try:
                state.waiters.remove(waiter)
            except ValueError:
                pass
            self._forget_if_idle(key)

    def _forget_if_idle(self, key: str) -> None:
        state = self._states.get(key)
        if state is not None and state.running == 0 and not state.waiters:
            del self._states[key]

    @asynccontextmanager
    async def slot(self, key: str, *, wait_s: float) -> AsyncIterator[bool]:
        acquired = await self.acquire(key, wait_s=wait_s)
        try:
            yield acquired
        finally:
            if acquired:
                self.release(key)
