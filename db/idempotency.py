"""Idempotency keys: one row per (owner, key) holding the request's hash and, once done, its
response. The row is claimed before the work starts, so concurrent requests with one key cannot
both do the work; it is kept `retention_s` (at least 24 h) after it was first used."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg


class IdempotencyStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@dataclass(frozen=True)
class IdempotencyRecord:
    owner: str
    key: str
    request_hash: bytes
    method: str
    path: str
    status: IdempotencyStatus
    request_id: str
    response_status: int | None
    response_body: bytes | None
    response_content_type: str | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: `claimed` means this request owns the key and must do the work;
    otherwise `existing` is the row another request holds (or completed)."""

    claimed: bool
    existing: IdempotencyRecord | None


def _record(row: asyncpg.Record) -> IdempotencyRecord:
    return IdempotencyRecord(
        owner=row["owner"],
        key=row["key"],
        request_hash=bytes(row["request_hash"]),
        method=row["method"],
        path=row["path"],
        status=IdempotencyStatus(row["status"]),
        request_id=row["request_id"],
        response_status=row["response_status"],
        response_body=bytes(row["response_body"]) if row["response_body"] is not None else None,
        response_content_type=row["response_content_type"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


async def claim_idempotency_key(
    pool: asyncpg.Pool,
    *,
    owner: str,
    key: str,
    request_hash: bytes,
    method: str,
    path: str,
    request_id: str,
    retention_s: int,
    lock_timeout_s: int,
) -> Claim:
    """Claim (owner, key) for this request. A row past its retention is replaced; a claim left
    in progress longer than `lock_timeout_s` (its process died) is taken over by a request with
    the same body. Anything else leaves the row as it is and returns it."""
    row = await pool.fetchrow(
        """
        INSERT INTO idempotency_keys (owner, key, request_hash, method, path, status, request_id, expires_at)
        VALUES ($1, $2, $3, $4, $5, 'in_progress', $6, now() + make_interval(secs => $7))
        ON CONFLICT (owner, key) DO UPDATE SET
            request_hash = EXCLUDED.request_hash, method = EXCLUDED.method, path = EXCLUDED.path,
            status = 'in_progress', request_id = EXCLUDED.request_id, response_status = NULL,
            response_body = NULL, response_content_type = NULL, locked_at = now(), created_at = now(),
            expires_at = EXCLUDED.expires_at
        WHERE idempotency_keys.expires_at <= now()
           OR (idempotency_keys.status = 'in_progress'
               AND idempotency_keys.locked_at < now() - make_interval(secs => $8)
               AND idempotency_keys.request_hash = EXCLUDED.request_hash)
        RETURNING owner
        """,
        owner,
        key,
        request_hash,
        method,
        path,
        request_id,
        float(retention_s),
        float(lock_timeout_s),
    )
    if row is not None:
        return Claim(claimed=True, existing=None)
    existing = await get_idempotency_record(pool, owner=owner, key=key)
    return Claim(claimed=False, existing=existing)


async def get_idempotency_record(pool: asyncpg.Pool, *, owner: str, key: str) -> IdempotencyRecord | None:
    row = await pool.fetchrow("SELECT * FROM idempotency_keys WHERE owner = $1 AND key = $2", owner, key)
    return _record(row) if row is not None else None


async def complete_idempotency_key(
    pool: asyncpg.Pool,
    *,
    owner: str,
    key: str,
    request_id: str,
    response_status: int,
    response_body: bytes,
    response_content_type: str | None,
) -> bool:
    """Store the response for replays. False if the claim was no longer this request's."""
    status = await pool.execute(
        """
        UPDATE idempotency_keys
        SET status = 'completed', response_status = $4, response_body = $5, response_content_type = $6
        WHERE owner = $1 AND key = $2 AND request_id = $3 AND status = 'in_progress'
        """,
        owner,
        key,
        request_id,
        response_status,
        response_body,
        response_content_type,
    )
    return status.endswith(" 1")


async def release_idempotency_key(pool: asyncpg.Pool, *, owner: str, key: str, request_id: str) -> None:
    """Give the key back after a request that changed nothing (a rejected input, a fault), so a
    retry with the same key runs afresh."""
    await pool.execute(
        "DELETE FROM idempotency_keys WHERE owner = $1 AND key = $2 AND request_id = $3 AND status = 'in_progress'",
        owner,
        key,
        request_id,
    )


async def purge_expired_idempotency_keys(pool: asyncpg.Pool, *, batch_size_max: int) -> int:
    """Delete up to `batch_size_max` rows past their retention. Returns how many."""
    assert batch_size_max > 0
    status = await pool.execute(
        """
        DELETE FROM idempotency_keys WHERE ctid IN (
            SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT $1
        )
        """,
        batch_size_max,
    )
    return int(status.split()[-1])
