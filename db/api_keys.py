"""API keys: stored as a SHA-256 hash with a lookup prefix, shown once, rotated with an overlap
window, revoked at once. Repository functions take keyword arguments and raise the errors below,
never HTTP errors."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import asyncpg

from db.audit import Actor, Clause, Connection, NO_VALUE, fetch_page, new_object_id, record_audit_event
from domain.pagination import Page, PageRequest
from domain.tenants import (
    BASE62_ALPHABET,
    ID_PREFIX_API_KEY,
    KEY_LOOKUP_LENGTH,
    KEY_ROTATION_OVERLAP_S_MAX,
    KEY_SECRET_LENGTH,
    ApiKeyStatus,
    ApiKeyType,
    AuditAction,
    KeyMode,
    Scope,
    api_key_status,
    format_api_key,
    hash_api_key,
    redact_api_key,
    scopes_missing_to_manage,
)


class ApiKeyNotFound(LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"No such API key: {key_id}")
        self.key_id = key_id


class ApiKeyConflict(Exception):
    """The key's state forbids the change (already rotated, revoked or expired; the last admin key)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ApiKeyForbidden(PermissionError):
    """The calling key may not change this key: it lacks scopes the key holds."""

    def __init__(self, message: str, *, code: str = "insufficient_scope") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    type: ApiKeyType
    name: str
    scopes: frozenset[Scope]
    livemode: bool
    redacted: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    rotated_from: str | None
    rotated_to: str | None
    created_by: str

    def status(self, *, now: datetime) -> ApiKeyStatus:
        return api_key_status(revoked_at=self.revoked_at, expires_at=self.expires_at, now=now)


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key and its secret: the only moment the secret exists outside the client."""

    api_key: ApiKey
    secret: str


@dataclass(frozen=True)
class KeyForAuthentication:
    """What authentication needs: the hash to compare and the tenant the key speaks for."""

    api_key: ApiKey
    secret_hash: bytes
    tenant_kind: str
    tenant_status: str


def _api_key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        tenant_id=row["tenant_id"],
        type=ApiKeyType(row["type"]),
        name=row["name"],
        scopes=frozenset(Scope(scope) for scope in row["scopes"]),
        livemode=row["livemode"],
        redacted=row["redacted"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        rotated_from=row["rotated_from"],
        rotated_to=row["rotated_to"],
        created_by=row["created_by"],
    )


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62_ALPHABET) for _ in range(length))


async def insert_api_key(
    connection: Connection,
    *,
    tenant_id: str,
    key_type: ApiKeyType,
    name: str,
    scopes: frozenset[Scope],
    mode: KeyMode,
    actor: Actor,
    rotated_from: str | None = None,
) -> CreatedApiKey:
    """Create a key and audit it. Run it on the caller's transaction."""
    assert scopes, "a key without scopes can do nothing"
    token = format_api_key(
        key_type=key_type, mode=mode, lookup=_random_base62(KEY_LOOKUP_LENGTH), secret=_random_base62(KEY_SECRET_LENGTH)
    )
    lookup = token.split("_", 2)[2][:KEY_LOOKUP_LENGTH]
    row = await connection.fetchrow(
        """
        INSERT INTO api_keys (id, tenant_id, type, name, scopes, livemode, lookup, secret_hash, redacted, rotated_from, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        RETURNING *
        """,
        new_object_id(ID_PREFIX_API_KEY),
        tenant_id,
        str(key_type),
        name,
        sorted(str(scope) for scope in scopes),
        mode is KeyMode.LIVE,
        lookup,
        hash_api_key(token),
        redact_api_key(token),
        rotated_from,
        actor.id,
    )
    api_key = _api_key(row)
    await record_audit_event(
        connection,
        tenant_id=tenant_id,
        actor=actor,
        action=AuditAction.API_KEY_CREATED,
        object_type="api_key",
        object_id=api_key.id,
        data={"name": name, "type": str(key_type), "scopes": sorted(str(scope) for scope in scopes), "rotated_from": rotated_from},
    )
    return CreatedApiKey(api_key=api_key, secret=token)


async def find_key_for_authentication(connection: Connection, *, lookup: str) -> KeyForAuthentication | None:
    row = await connection.fetchrow(
        """
        SELECT k.*, t.kind AS tenant_kind, t.status AS tenant_status
        FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
        WHERE k.lookup = $1
        """,
        lookup,
    )
    if row is None:
        return None
    return KeyForAuthentication(
        api_key=_api_key(row), secret_hash=bytes(row["secret_hash"]), tenant_kind=row["tenant_kind"], tenant_status=row["tenant_status"]
    )


async def touch_last_used(connection: Connection, *, key_id: str, resolution_s: int) -> None:
    """Record use at most once per `resolution_s`: a busy key must not write on every request."""
    await connection.execute(
        """
        UPDATE api_keys SET last_used_at = now()
        WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))
        """,
        key_id,
        float(resolution_s),
    )


async def get_api_key(connection: Connection, *, tenant_id: str, key_id: str) -> ApiKey:
    row = await connection.fetchrow("SELECT * FROM api_keys WHERE id = $1 AND tenant_id = $2", key_id, tenant_id)
    if row is None:
        raise ApiKeyNotFound(key_id)
    return _api_key(row)


_STATUS_CLAUSES: dict[ApiKeyStatus, str] = {
    ApiKeyStatus.ACTIVE: "revoked_at IS NULL AND expires_at IS NULL",
    ApiKeyStatus.EXPIRING: "revoked_at IS NULL AND expires_at > now()",
    ApiKeyStatus.EXPIRED: "revoked_at IS NULL AND expires_at <= now()",
    ApiKeyStatus.REVOKED: "revoked_at IS NOT NULL",
}


async def list_api_keys(
    connection: Connection,
    *,
    tenant_id: str,
    page: PageRequest,
    status: ApiKeyStatus | None = None,
    key_type: ApiKeyType | None = None,
) -> Page[ApiKey]:
    filters: list[Clause] = []
    if status is not None:
        filters.append((_STATUS_CLAUSES[status], NO_VALUE))
    if key_type is not None:
        filters.append(("type = {}", str(key_type)))
    result = await fetch_page(connection, table="api_keys", scope=[("tenant_id = {}", tenant_id)], filters=filters, page=page)
    return Page(items=[_api_key(row) for row in result.items], has_more=result.has_more)


async def _lock_key(connection: asyncpg.Connection, *, tenant_id: str, key_id: str) -> tuple[ApiKey, datetime]:
    row = await connection.fetchrow(
        "SELECT *, now() AS database_now FROM api_keys WHERE id = $1 AND tenant_id = $2 FOR UPDATE", key_id, tenant_id
    )
    if row is None:
        raise ApiKeyNotFound(key_id)
    return _api_key(row), row["database_now"]


def _require_may_manage(key: ApiKey, *, held_by_caller: frozenset[Scope], verb: str) -> None:
    missing = scopes_missing_to_manage(key_scopes=key.scopes, held_by_caller=held_by_caller)
    if missing:
        raise ApiKeyForbidden(
            f"This API key cannot {verb} API key {key.id}: that key holds scopes this one lacks "
            f"({', '.join(sorted(missing))}). Only a key holding every scope of another key may {verb} it."
        )


async def rotate_api_key(
    pool: asyncpg.Pool, *, tenant_id: str, key_id: str, overlap_s: int, actor: Actor, held_by_caller: frozenset[Scope]
) -> tuple[CreatedApiKey, ApiKey]:
    """A new key with the same type, name and scopes; the old one keeps working for `overlap_s`
    (0: it stops now). Returns the new key with its secret and the old key as it now stands.
    `held_by_caller`: the calling key's scopes, which must include every scope of the key."""
    assert 0 <= overlap_s <= KEY_ROTATION_OVERLAP_S_MAX
    async with pool.acquire() as connection, connection.transaction():
        old, now = await _lock_key(connection, tenant_id=tenant_id, key_id=key_id)
        _require_may_manage(old, held_by_caller=held_by_caller, verb="rotate")
        status = old.status(now=now)
        if old.rotated_to is not None:
            raise ApiKeyConflict(
                f"API key {key_id} was already rotated to {old.rotated_to}; rotate that key instead",
                code="api_key_already_rotated",
            )
        if status is not ApiKeyStatus.ACTIVE:
            raise ApiKeyConflict(f"API key {key_id} is {status}; only an active key can be rotated", code="api_key_not_active")
        mode = KeyMode.LIVE if old.livemode else KeyMode.TEST
        created = await insert_api_key(
            connection,
            tenant_id=tenant_id,
            key_type=old.type,
            name=old.name,
            scopes=old.scopes,
            mode=mode,
            actor=actor,
            rotated_from=old.id,
        )
        expires_at = now + timedelta(seconds=overlap_s)
        row = await connection.fetchrow(
            "UPDATE api_keys SET expires_at = $2, rotated_to = $3 WHERE id = $1 RETURNING *", old.id, expires_at, created.api_key.id
        )
        await record_audit_event(
            connection,
            tenant_id=tenant_id,
            actor=actor,
            action=AuditAction.API_KEY_ROTATED,
            object_type="api_key",
            object_id=old.id,
            data={"rotated_to": created.api_key.id, "expires_at": expires_at.astimezone(timezone.utc).isoformat(), "overlap_s": overlap_s},
        )
        return created, _api_key(row)


async def revoke_api_key(
    pool: asyncpg.Pool, *, tenant_id: str, key_id: str, actor: Actor, held_by_caller: frozenset[Scope]
) -> ApiKey:
    """Stop a key now. Revoking a revoked key changes nothing. The tenant's last usable key that
    can manage keys cannot be revoked: nobody could create another one. `held_by_caller`: the
    calling key's scopes, which must include every scope of the key."""
    async with pool.acquire() as connection, connection.transaction():
        # One tenant's revocations run one at a time, so two of them cannot each leave the other
        # as "the last admin key" and both succeed.
        await connection.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
        key, now = await _lock_key(connection, tenant_id=tenant_id, key_id=key_id)
        _require_may_manage(key, held_by_caller=held_by_caller, verb="revoke")
        if key.revoked_at is not None:
            return key
        if Scope.API_KEYS_WRITE in key.scopes and key.status(now=now) is not ApiKeyStatus.EXPIRED:
            others = await connection.fetchval(
                """
                SELECT count(*) FROM api_keys
                WHERE tenant_id = $1 AND id <> $2 AND revoked_at IS NULL
                  AND (expires_at IS NULL OR expires_at > now()) AND $3 = ANY(scopes)
                """,
                tenant_id,
                key_id,
                str(Scope.API_KEYS_WRITE),
            )
            if others == 0:
                raise ApiKeyConflict(
                    f"API key {key_id} is the last key that can manage API keys; create or rotate another first",
                    code="last_admin_key",
                )
        row = await connection.fetchrow("UPDATE api_keys SET revoked_at = now() WHERE id = $1 RETURNING *", key_id)
        await record_audit_event(
            connection,
            tenant_id=tenant_id,
            actor=actor,
            action=AuditAction.API_KEY_REVOKED,
            object_type="api_key",
            object_id=key_id,
            data={"name": key.name, "type": str(key.type)},
        )
        return _api_key(row)


async def create_api_key(
    pool: asyncpg.Pool,
    *,
    tenant_id: str,
    key_type: ApiKeyType,
    name: str,
    scopes: frozenset[Scope],
    mode: KeyMode,
    actor: Actor,
) -> CreatedApiKey:
    async with pool.acquire() as connection, connection.transaction():
        return await insert_api_key(
            connection, tenant_id=tenant_id, key_type=key_type, name=name, scopes=scopes, mode=mode, actor=actor
        )
