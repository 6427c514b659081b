"""Against the real API process of the session's stack, over HTTP, and the `settle tenants` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import httpx

from tests.api.helpers import REQUEST_ID, assert_error


async def test_tenant_lifecycle_over_http(stack):
    admin = {"Authorization": f"Bearer {stack['admin_api_key']}"}
    async with httpx.AsyncClient(base_url=stack["api_url"], timeout=10) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200 and REQUEST_ID.match(health.headers["x-request-id"])
        idempotency = {"Idempotency-Key": str(uuid.uuid4())}
        created = await http.post("/v1/tenants", json={"kind": "merchant", "name": "Jirani"}, headers={**admin, **idempotency})
        assert created.status_code == 201, created.text
        replay = await http.post("/v1/tenants", json={"kind": "merchant", "name": "Jirani"}, headers={**admin, **idempotency})
        assert replay.headers["idempotent-replayed"] == "true" and replay.json()["id"] == created.json()["id"]
        key = {"Authorization": f"Bearer {created.json()['api_key']['secret']}"}
        me = await http.get("/v1/tenant", headers=key)
        assert me.status_code == 200 and me.json()["id"] == created.json()["id"]
        assert int(me.headers["ratelimit-remaining"]) >= 0 and me.headers["cache-control"] == "no-store"
        assert_error(await http.get("/v1/tenant"), 401, code="api_key_missing")
        assert_error(await http.get("/v1/tenants", headers=key), 403, code="platform_admin_required")
        assert_error(await http.patch("/v1/tenant", json={"fee_bps": "lots"}, headers=key), 400, code="parameter_invalid")
        spec = await http.get("/openapi.json")
        assert spec.status_code == 200 and "/v1/api_keys/{key_id}/rotate" in spec.json()["paths"]
        assert (await http.get("/docs")).status_code == 200


def test_cli_creates_a_tenant_whose_key_works(stack):
    env = {"SETTLE_STATE_DIR": stack["state_dir"], "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "tenants", "create", "--kind", "program", "--name", "MLM backend", "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["id"].startswith("ten_") and created["kind"] == "program" and created["name"] == "MLM backend"
    secret = created["api_key"]["secret"]
    assert secret.startswith("sk_test_")
    response = httpx.get(f"{stack['api_url']}/v1/audit_events", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert response.status_code == 200
    actors = {event["actor"]["type"] for event in response.json()["data"]}
    assert actors == {"cli"}


def test_cli_without_json_prints_id_and_key(stack):
    env = {"SETTLE_DATABASE_URL": stack["database_url"], "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "tenants", "create", "--kind", "merchant", "--name", "crypto checkout"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "tenant   ten_" in result.stdout and "api key  sk_test_" in result.stdout


def test_cli_refuses_bad_input(stack):
    env = {"SETTLE_DATABASE_URL": stack["database_url"], "PATH": "/usr/bin:/bin"}
    bad_kind = subprocess.run(
        [sys.executable, "-m", "cli.main", "tenants", "create", "--kind", "bank", "--name", "x"], capture_output=True, text=True, env=env, timeout=60
    )
    assert bad_kind.returncode == 2 and "invalid choice" in bad_kind.stderr
    bad_fee = subprocess.run(
        [sys.executable, "-m", "cli.main", "tenants", "create", "--kind", "merchant", "--name", "x", "--fee-bps", "20000"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert bad_fee.returncode == 1 and "--fee-bps" in bad_fee.stderr and "Traceback" not in bad_fee.stderr


def test_the_api_process_logs_json_lines_without_secrets(stack):
    from pathlib import Path

    secret_probe = "sk_test_" + "L" * 44
    response = httpx.get(f"{stack['api_url']}/v1/tenant", headers={"Authorization": f"Bearer {secret_probe}"}, timeout=10)
    request_id = response.headers["x-request-id"]
    # The access line is written once the response is sent: give the server a moment.
    for _ in range(50):
        log = (Path(stack["state_dir"]) / "logs" / "api.log").read_text()
        entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        ours = [entry for entry in entries if entry.get("request_id") == request_id]
        if ours:
            break
        time.sleep(0.1)
    assert len(ours) == 1 and ours[0]["status"] == 401 and ours[0]["route"] == "/v1/tenant"
    assert secret_probe not in log and stack["admin_api_key"] not in log
