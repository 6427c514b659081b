"""Rate limits: a token bucket per (tier, API key) and per (tier, client IP).

The buckets live in this process's memory. With one API process that is exact; with N
processes behind a load balancer each one enforces its own buckets, so the effective limit is up
to N times the configured one. Moving the buckets to a shared store (PostgreSQL or Redis) only
means another `TokenBuckets` with the same `take` method.

Per-IP buckets key on the ASGI client address. Behind a load balancer, run uvicorn with
`--proxy-headers --forwarded-allow-ips=<the balancer>` so that address is the client's.

The answer carries draft-IETF RateLimit headers (`RateLimit-Limit`, `RateLimit-Remaining`,
`RateLimit-Reset`, `RateLimit-Policy`) for the tighter of the two buckets, and a 429 also
carries `Retry-After`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from db.settings import RateLimit


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: RateLimit
    remaining: int
    # Seconds until the bucket is full again.
    reset_s: int
    # Seconds until one request would be allowed; 0 when allowed now.
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit.requests),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": self.limit.policy,
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


class TokenBuckets:
    """Bounded: beyond `buckets_max` keys the least recently used bucket is forgotten (it was
    refilling anyway; forgetting one only ever errs towards allowing)."""

    def __init__(self, *, buckets_max: int, clock: Callable[[], float] = time.monotonic) -> None:
        assert buckets_max > 0
        self.buckets_max = buckets_max
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, ...], _Bucket] = OrderedDict()

    def take(self, key: tuple[str, ...], limit: RateLimit) -> Decision:
        # No await in here: on one event loop a take is atomic.
        now_s = self.clock()
        capacity = float(limit.requests)
        refill_per_s = limit.requests / limit.window_s
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=capacity, updated_s=now_s)
            self._buckets[key] = bucket
            while len(self._buckets) > self.buckets_max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(capacity, bucket.tokens + (now_s - bucket.updated_s) * refill_per_s)
            bucket.updated_s = now_s
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        reset_s = math.ceil((capacity - bucket.tokens) / refill_per_s)
        retry_after_s = 0 if allowed else max(1, math.ceil((1.0 - bucket.tokens) / refill_per_s))
        return Decision(
            allowed=allowed,
            limit=limit,
            remaining=int(bucket.tokens),
            reset_s=reset_s,
            retry_after_s=retry_after_s,
        )


def tighter(first: Decision | None, second: Decision) -> Decision:
    """The decision whose headers the client should see: a refusal, else the fewer remaining."""
    if first is None:
        return second
    if first.allowed != second.allowed:
        return second if not second.allowed else first
    return second if second.remaining < first.remaining else first
