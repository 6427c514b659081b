"""Rate limits per key and per client IP, by tier, on every authenticated route: 429 with
`Retry-After` and the RateLimit headers; the buckets themselves; the tiers' configuration."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.auth import route_tier
from api.ratelimit import TokenBuckets
from api.routing import iter_api_routes
from db.settings import ApiSettings, RateLimit, Settings
from tests.api.conftest import make_client
from tests.api.helpers import assert_error, by_id, owner_headers
from tests.api.routes import ROUTES, send

ALL_TIERS = ("create", "write", "read")


def limited_app(settings, db_pool, *, per_key: str, per_ip: str):
    tiers = {tier: {"per_key": per_key, "per_ip": per_ip} for tier in ALL_TIERS}
    return create_app(settings, ApiSettings(rate_limit_tiers=tiers, json_logs=False), pool=db_pool)


@by_id(ROUTES)
async def test_per_key_limit(case, world, settings, db_pool):
    app = limited_app(settings, db_pool, per_key="2/minute", per_ip="1000/minute")
    headers = owner_headers(case, world)
    # Objects the calls need are made through the unlimited app (`world.client`).
    calls = [await case.valid_call(world) for _ in range(3)]
    async with app.router.lifespan_context(app), make_client(app) as limited:
        first = await send(limited, calls[0], headers)
        assert first.status_code == case.success_status, first.text
        assert first.headers["ratelimit-limit"] == "2" and first.headers["ratelimit-remaining"] == "1"
        assert first.headers["ratelimit-policy"] == "2;w=60"
        assert (await send(limited, calls[1], headers)).status_code == case.success_status
        refused = await send(limited, calls[2], headers)
        error = assert_error(refused, 429, code="rate_limited", type="rate_limit_error")
        assert "API key" in error["message"]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0" and refused.headers["ratelimit-limit"] == "2"
        # Another key has its own bucket.
        if case.auth == "tenant":
            assert (await send(limited, calls[2], world.intruder.headers)).status_code != 429


@by_id(ROUTES)
async def test_per_ip_limit(case, world, settings, db_pool):
    app = limited_app(settings, db_pool, per_key="1000/minute", per_ip="2/minute")
    call = await case.valid_call(world)
    async with app.router.lifespan_context(app):
        async with make_client(app, ip="198.51.100.7") as limited:
            for _ in range(2):
                await send(limited, call, owner_headers(case, world))
            # A third key from the same address is still refused; so is no key at all.
            refused = await send(limited, call, world.intruder.headers)
            error = assert_error(refused, 429, code="rate_limited")
            assert "IP address" in error["message"] and "retry-after" in refused.headers
            assert_error(await send(limited, call), 429)
        async with make_client(app, ip="198.51.100.8") as elsewhere:
            assert (await send(elsewhere, call)).status_code == 401


async def test_tiers_are_separate_buckets(settings, db_pool, tenant):
    tiers = {"create": {"per_key": "1/minute", "per_ip": "1000/minute"}, "read": {"per_key": "1000/minute", "per_ip": "1000/minute"}}
    app = create_app(settings, ApiSettings(rate_limit_tiers=tiers, json_logs=False), pool=db_pool)
    async with app.router.lifespan_context(app), make_client(app) as limited:
        payload = {"name": "tier", "type": "publishable"}
        assert (await limited.post("/v1/api_keys", json=payload, headers=tenant.headers)).status_code == 201
        assert (await limited.post("/v1/api_keys", json=payload, headers=tenant.headers)).status_code == 429
        assert (await limited.get("/v1/api_keys", headers=tenant.headers)).status_code == 200


async def test_limits_can_be_switched_off(settings, db_pool, tenant):
    app = create_app(settings, ApiSettings(rate_limits_enabled=False, json_logs=False, rate_limit_tiers={"read": {"per_key": "1/hour", "per_ip": "1/hour"}}), pool=db_pool)
    async with app.router.lifespan_context(app), make_client(app) as unlimited:
        for _ in range(3):
            response = await unlimited.get("/v1/tenant", headers=tenant.headers)
            assert response.status_code == 200 and "ratelimit-limit" not in response.headers


def test_every_route_has_a_configured_tier():
    app = create_app()
    settings = app.state.api_settings
    for route in iter_api_routes(app):
        for method in route.methods:
            assert route_tier(route, method) in settings.rate_limit_tiers


def test_default_tiers_match_the_issue():
    tiers = ApiSettings().rate_limit_tiers
    assert tiers["create"].per_key == RateLimit(requests=1000, window_s=3600)
    assert tiers["create"].per_ip == RateLimit(requests=100, window_s=60)


def test_tiers_from_the_environment(monkeypatch):
    monkeypatch.setenv("SETTLE_API_RATE_LIMIT_TIERS", '{"create": {"per_key": "10/minute", "per_ip": "5/10second"}, "bulk": {"per_key": "1/day", "per_ip": "2/day"}}')
    tiers = Settings().api.rate_limit_tiers
    assert tiers["create"].per_key == RateLimit(requests=10, window_s=60)
    assert tiers["create"].per_ip == RateLimit(requests=5, window_s=10)
    assert tiers["bulk"].per_key.window_s == 86400
    assert tiers["read"].per_key.requests == 20000  # untouched tiers keep their defaults


def test_bad_tier_is_refused():
    with pytest.raises(ValueError, match="like '100/minute'"):
        ApiSettings(rate_limit_tiers={"create": {"per_key": "lots", "per_ip": "1/minute"}})


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_bucket_refills_and_says_when():
    clock = FakeClock()
    buckets = TokenBuckets(buckets_max=100, clock=clock)
    limit = RateLimit(requests=2, window_s=60)
    assert buckets.take(("t", "key", "a"), limit).allowed
    assert buckets.take(("t", "key", "a"), limit).allowed
    refused = buckets.take(("t", "key", "a"), limit)
    assert not refused.allowed and refused.retry_after_s == 30 and refused.headers()["Retry-After"] == "30"
    clock.now_s += 30
    assert buckets.take(("t", "key", "a"), limit).allowed
    assert buckets.take(("t", "key", "b"), limit).allowed  # another key, another bucket


def test_buckets_are_bounded():
    buckets = TokenBuckets(buckets_max=100, clock=FakeClock())
    limit = RateLimit(requests=1, window_s=60)
    for index in range(1000):
        buckets.take(("t", "ip", str(index)), limit)
    assert len(buckets._buckets) == 100
