"""Structured JSON logs, one line a request, with secrets redacted wherever they slip in."""

from __future__ import annotations

import io
import json
import logging

import pytest

from api.logs import LOGGER_NAME, JsonFormatter, redact


@pytest.fixture
def log_lines():
    """Every line `settle.api` writes during the test, through the JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(extra_secrets=("sk_test_local_platform_admin",)))
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_redact_masks_every_kind_of_secret():
    text = (
        "key sk_test_abcdefABCDEF0123456789abcdefABCDEF0123456789 rk_live_xyz pk_test_1 "
        "Authorization: Bearer whatever-token pi_abc12345678_secret_ABCDEFGHIJKLMNOPQRSTUVWX "
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcbc7c5f60f6b2ff80 password=hunter2"
    )
    redacted = redact(text, extra_secrets=("hunter2",))
    for secret in ("abcdefABCDEF0123", "rk_live_xyz", "whatever-token", "ABCDEFGHIJKLMNOPQRSTUVWX", "ac0974bec39a", "hunter2"):
        assert secret not in redacted
    assert "sk_test_[REDACTED]" in redacted and "pi_abc12345678_secret_[REDACTED]" in redacted


def test_formatter_writes_json_with_extras_and_redacts_them():
    record = logging.LogRecord(LOGGER_NAME, logging.INFO, __file__, 1, "got %s", ("sk_test_" + "a" * 44,), None)
    record.tenant_id = "ten_1"
    record.token = "sk_live_" + "b" * 44
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info" and line["logger"] == LOGGER_NAME and line["tenant_id"] == "ten_1"
    assert "a" * 44 not in json.dumps(line) and "b" * 44 not in json.dumps(line)


async def test_each_request_logs_one_line_without_secrets(client, tenant, admin_headers, log_lines):
    response = await client.patch("/v1/tenant", json={"name": f"named {tenant.secret}"}, headers=tenant.headers)
    assert response.status_code == 200
    await client.get("/v1/tenants", headers=admin_headers)
    await client.get("/v1/tenant", headers={"Authorization": "Bearer sk_test_" + "Z" * 44})
    lines = log_lines()
    requests = [line for line in lines if line["message"] == "request"]
    assert len(requests) == 3
    patch = requests[0]
    assert patch["request_id"] == response.headers["x-request-id"] and patch["status"] == 200
    assert patch["route"] == "/v1/tenant" and patch["tenant_id"] == tenant.id and patch["api_key_id"] == tenant.key_id
    assert patch["method"] == "PATCH" and patch["duration_ms"] >= 0 and patch["client_ip"]
    assert requests[2]["status"] == 401
    everything = json.dumps(lines)
    assert tenant.secret not in everything and "Z" * 44 not in everything and "sk_test_local_platform_admin" not in everything


async def test_a_fault_is_logged_with_its_trace_but_redacted(settings, api_settings, db_pool, log_lines):
    from api.app import create_app
    from tests.api.conftest import make_client

    app = create_app(settings, api_settings, pool=db_pool)
    leaked = "sk_live_" + "Q" * 44

    @app.get("/explode", include_in_schema=False)
    async def explode() -> None:
        raise ValueError(f"bad things with {leaked}")

    async with app.router.lifespan_context(app), make_client(app) as http:
        response = await http.get("/explode")
    assert response.status_code == 500
    errors = [line for line in log_lines() if line["message"] == "unhandled error"]
    assert len(errors) == 1 and "ValueError" in errors[0]["exception"]
    assert errors[0]["request_id"] == response.headers["x-request-id"]
    assert "Q" * 44 not in json.dumps(errors)
