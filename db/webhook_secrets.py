"""Webhook signing secrets: an endpoint's own, and a tenant's notify secret (it signs deliveries to
the `notify_url`s the tenant's objects name). Sealed at rest (db.secret_box), the row's identity
bound in; a rotation keeps the previous secret signing beside the new one for an overlap.

Reads never return a secret: creations and rotations return it once, and only
`open_signing_secrets` (the sending activity) opens the sealed ones.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import asyncpg

from db.audit import Connection, new_object_id
from db.pool import transaction
from db.secret_box import SecretBox
from domain.webhooks import ID_PREFIX_SIGNING_SECRET, SECRET_BYTES, format_signing_secret, validate_rotation_overlap_s

# Signing secrets used at once for one owner: the current one and those still in overlap.
SIGNING_SECRETS_MAX = 3


class SecretOwner(StrEnum):
    """Whose secret it is (the `owner_kind` column): an endpoint's, or a tenant's notify secret."""

    ENDPOINT = "endpoint"
    TENANT = "tenant"


def _secret_context(*, secret_id: str, owner_kind: SecretOwner, owner_id: str) -> str:
    # The row's identity, sealed in as associated data.
    return f"webhook-signing-secret/{secret_id}/{owner_kind}/{owner_id}"


@dataclass(frozen=True)
class RotatedSecret:
    secret: str
    # Until then the previous secret signs beside the new one (None: it stopped at once).
    previous_expires_at: datetime | None


@dataclass(frozen=True)
class NotifySecret:
    """The tenant's notify secret as reads show it: never the secret itself."""

    # When the current secret was made; None: the tenant has none yet.
    created_at: datetime | None
    # Until then a rotated secret still signs beside the current one.
    previous_expires_at: datetime | None


async def insert_signing_secret(connection: asyncpg.Connection, *, secret_box: SecretBox, owner_kind: SecretOwner, owner_id: str) -> str:
    """A new current secret for the owner, returned once (`whsec_...`); inside the caller's transaction."""
    raw = secrets.token_bytes(SECRET_BYTES)
    secret_id = new_object_id(ID_PREFIX_SIGNING_SECRET)
    sealed = secret_box.seal(raw, context=_secret_context(secret_id=secret_id, owner_kind=owner_kind, owner_id=owner_id))
    await connection.execute(
        "INSERT INTO webhook_signing_secrets (id, owner_kind, owner_id, secret_sealed) VALUES ($1, $2, $3, $4)",
        secret_id,
        str(owner_kind),
        owner_id,
        sealed,
    )
    return format_signing_secret(raw)


async def rotate_signing_secret(
    connection: asyncpg.Connection, *, secret_box: SecretBox, owner_kind: SecretOwner, owner_id: str, overlap_s: int
) -> RotatedSecret:
    """The current secret signs for `overlap_s` more beside a new one; one overlap at a time,
    so a secret rotated earlier and still overlapping stops now."""
    validate_rotation_overlap_s(overlap_s)
    # Rotations of one owner run one at a time.
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext('webhook_secret/' || $1 || '/' || $2))", str(owner_kind), owner_id)
    now = await connection.fetchval("SELECT now()")
    await connection.execute(
        "DELETE FROM webhook_signing_secrets WHERE owner_kind = $1 AND owner_id = $2 AND expires_at IS NOT NULL",
        str(owner_kind),
        owner_id,
    )
    current = await connection.fetchval(
        "SELECT 1 FROM webhook_signing_secrets WHERE owner_kind = $1 AND owner_id = $2 AND expires_at IS NULL", str(owner_kind), owner_id
    )
    # Nothing signs yet (a tenant's first notify secret): there is no previous secret to keep.
    previous_expires_at = now + timedelta(seconds=overlap_s) if overlap_s > 0 and current is not None else None
    if previous_expires_at is None:
        await connection.execute(
            "DELETE FROM webhook_signing_secrets WHERE owner_kind = $1 AND owner_id = $2", str(owner_kind), owner_id
        )
    else:
        await connection.execute(
            "UPDATE webhook_signing_secrets SET expires_at = $3 WHERE owner_kind = $1 AND owner_id = $2 AND expires_at IS NULL",
            str(owner_kind),
            owner_id,
            previous_expires_at,
        )
    secret = await insert_signing_secret(connection, secret_box=secret_box, owner_kind=owner_kind, owner_id=owner_id)
    return RotatedSecret(secret=secret, previous_expires_at=previous_expires_at)


async def rotate_notify_secret(connection: Connection, *, secret_box: SecretBox, tenant_id: str, overlap_s: int) -> RotatedSecret:
    """A new notify secret (the one that signs deliveries to the `notify_url`s a tenant's objects
    name), returned once; the previous one keeps signing beside it for `overlap_s`. The first
    rotation of a tenant without one creates it."""
    async with transaction(connection) as in_transaction:
        return await rotate_signing_secret(
            in_transaction, secret_box=secret_box, owner_kind=SecretOwner.TENANT, owner_id=tenant_id, overlap_s=overlap_s
        )


async def get_notify_secret(connection: Connection, *, tenant_id: str) -> NotifySecret:
    """When the tenant's notify secret was made and until when a rotated one still signs."""
    rows = await _live_secrets(connection, owner_kind=SecretOwner.TENANT, owner_id=tenant_id)
    current = next((row for row in rows if row["expires_at"] is None), None)
    previous = [row["expires_at"] for row in rows if row["expires_at"] is not None]
    return NotifySecret(created_at=current["created_at"] if current else None, previous_expires_at=max(previous, default=None))


async def ensure_notify_secret(connection: asyncpg.Connection, *, secret_box: SecretBox, tenant_id: str) -> str | None:
    """The tenant's notify secret, created if it has none: returns it when created (once), else
    None. Runs inside the caller's transaction."""
    exists = "SELECT 1 FROM webhook_signing_secrets WHERE owner_kind = $1 AND owner_id = $2 AND expires_at IS NULL"
    if await connection.fetchval(exists, SecretOwner.TENANT.value, tenant_id) is not None:
        return None
    # The rotations' lock: creations and rotations of one tenant's secret run one at a time.
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext('webhook_secret/' || $1 || '/' || $2))", SecretOwner.TENANT.value, tenant_id)
    if await connection.fetchval(exists, SecretOwner.TENANT.value, tenant_id) is not None:
        return None
    return await insert_signing_secret(connection, secret_box=secret_box, owner_kind=SecretOwner.TENANT, owner_id=tenant_id)


async def _live_secrets(connection: Connection, *, owner_kind: SecretOwner, owner_id: str) -> list[asyncpg.Record]:
    """The owner's secrets that still sign (the current one and those in overlap), newest first."""
    return await connection.fetch(
        """
        SELECT id, secret_sealed, created_at, expires_at FROM webhook_signing_secrets
        WHERE owner_kind = $1 AND owner_id = $2 AND (expires_at IS NULL OR expires_at > now())
        ORDER BY created_at DESC LIMIT $3
        """,
        str(owner_kind),
        owner_id,
        SIGNING_SECRETS_MAX,
    )


async def open_signing_secrets(connection: Connection, *, secret_box: SecretBox, owner_kind: SecretOwner, owner_id: str) -> list[bytes]:
    """The raw HMAC keys that sign for the owner now, newest first: a delivery carries a signature
    of each, so a receiver on either side of a rotation accepts it."""
    return [
        secret_box.open(row["secret_sealed"], context=_secret_context(secret_id=row["id"], owner_kind=owner_kind, owner_id=owner_id))
        for row in await _live_secrets(connection, owner_kind=owner_kind, owner_id=owner_id)
    ]


async def signing_secret_expirations(connection: Connection, *, owner_kind: SecretOwner, owner_id: str) -> list[datetime | None]:
    """When each live secret of the owner stops (None: the current one), newest first."""
    return [row["expires_at"] for row in await _live_secrets(connection, owner_kind=owner_kind, owner_id=owner_id)]


async def delete_signing_secrets(connection: Connection, *, owner_kind: SecretOwner, owner_id: str) -> None:
    await connection.execute("DELETE FROM webhook_signing_secrets WHERE owner_kind = $1 AND owner_id = $2", str(owner_kind), owner_id)
