"""Webhooks' repository: endpoints (with sealed signing secrets and their rotation), the event
queue's fan-out into deliveries, the attempts log, redelivery.

Reads never return a signing secret: `create_endpoint` and the rotations return it once, and only
`load_attempt_context` (the sending activity) opens the sealed ones. Functions that write more
than one row take a pool or a connection; on a connection they run in a savepoint of the caller's
transaction, so the API can add its audit event to the same transaction.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Sequence

import asyncpg
from Crypto.Cipher import AES

from db.audit import NO_VALUE, Actor, Clause, Connection, fetch_page, new_object_id, record_audit_event
from db.events import NewEvent, insert_events
from domain.events import EventType, webhook_endpoint_event_id, webhook_endpoint_object
from domain.pagination import Page, PageRequest
from domain.tenants import AuditAction
from domain.webhooks import (
    ENDPOINTS_PER_TENANT_MAX,
    ERROR_STORED_MAX,
    ID_PREFIX_ATTEMPT,
    ID_PREFIX_ENDPOINT,
    ID_PREFIX_SIGNING_SECRET,
    RESPONSE_BODY_STORED_MAX,
    SECRET_BYTES,
    URL_LENGTH_MAX,
    DeliveryStatus,
    DisabledReason,
    EndpointHealth,
    EndpointKind,
    EndpointStatus,
    UrlPolicy,
    WebhookRuleError,
    delivery_id_for,
    format_signing_secret,
    parse_target_url,
    truncate_text,
    validate_description,
    validate_enabled_events,
    validate_rotation_overlap_s,
)

DEFAULT_ROUTE = "default"
NOTIFY_CHANNEL = "settle_webhook_events"
_OWNER_ENDPOINT = "endpoint"
_OWNER_TENANT = "tenant"
# The audit log's object type for a tenant's notify secret (its object id is the tenant's).
NOTIFY_SECRET_OBJECT_TYPE = "notify_secret"
# Signing secrets used at once for one owner: the current one and those still in overlap.
_SIGNING_SECRETS_MAX = 3


# ---------------------------------------------------------------------------- errors
class WebhookEndpointNotFound(LookupError):
    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"No such webhook endpoint: {endpoint_id}")
        self.endpoint_id = endpoint_id


class WebhookDeliveryNotFound(LookupError):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"No such webhook delivery: {delivery_id}")
        self.delivery_id = delivery_id


class WebhookConflict(Exception):
    """The request is valid but the object's state refuses it: the API answers 409."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class SecretUnsealError(Exception):
    """A sealed secret could not be opened: wrong key, or a row that was tampered with."""


# ---------------------------------------------------------------------------- sealing
class SecretBox:
    """AES-256-GCM sealing of signing secrets at rest. The first key seals; every key opens what
    it sealed (found by its id), so the deployment key can be rotated. The row's identity is the
    associated data: a sealed secret copied onto another row does not open."""

    _VERSION = "v1"

    def __init__(self, keys: Sequence[bytes]) -> None:
        assert keys, "at least one key"
        for key in keys:
            assert len(key) == 32, "AES-256 keys are 32 bytes"
        self._keys = {self._key_id(key): key for key in reversed(keys)}
        self._sealing_key_id = self._key_id(keys[0])

    @staticmethod
    def _key_id(key: bytes) -> str:
        return hashlib.sha256(b"settle-webhook-secret-key/" + key).hexdigest()[:8]

    def seal(self, plaintext: bytes, *, context: str) -> str:
        nonce = secrets.token_bytes(12)
        cipher = AES.new(self._keys[self._sealing_key_id], AES.MODE_GCM, nonce=nonce)
        cipher.update(context.encode())
        ciphertext, tag = cipher.encrypt_and_digest(plaintext)
        return f"{self._VERSION}.{self._sealing_key_id}.{base64.b64encode(nonce + ciphertext + tag).decode('ascii')}"

    def open(self, sealed: str, *, context: str) -> bytes:
        try:
            version, key_id, payload = sealed.split(".", 2)
            raw = base64.b64decode(payload, validate=True)
        except ValueError as error:
            raise SecretUnsealError("malformed sealed secret") from error
        key = self._keys.get(key_id)
        if version != self._VERSION or key is None or len(raw) < 12 + 16:
            raise SecretUnsealError(f"no key {key_id!r} to open this secret (version {version!r})")
        cipher = AES.new(key, AES.MODE_GCM, nonce=raw[:12])
        cipher.update(context.encode())
        try:
            return cipher.decrypt_and_verify(raw[12:-16], raw[-16:])
        except ValueError as error:
            raise SecretUnsealError("sealed secret failed authentication") from error


def _secret_context(*, secret_id: str, owner_kind: str, owner_id: str) -> str:
    return f"webhook-signing-secret/{secret_id}/{owner_kind}/{owner_id}"


# ---------------------------------------------------------------------------- read models
@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    tenant_id: str
    kind: EndpointKind
    url: str
    description: str
    enabled_events: list[str]
    status: EndpointStatus
    disabled_reason: DisabledReason | None
    failing_since: datetime | None
    failing_marked_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @property
    def health(self) -> EndpointHealth:
        return EndpointHealth.FAILING if self.failing_marked_at is not None else EndpointHealth.HEALTHY

    def public_data(self) -> dict[str, Any]:
        """The endpoint as an event's `data.object` (and the API's shape): never a secret."""
        return webhook_endpoint_object(
            id=self.id,
            url=self.url,
            description=self.description,
            enabled_events=self.enabled_events,
            status=self.status,
            disabled_reason=self.disabled_reason,
            health=self.health,
            failing_since=self.failing_since,
            created_at=self.created_at,
        )


@dataclass(frozen=True)
class CreatedWebhookEndpoint:
    endpoint: WebhookEndpoint
    # `whsec_...`: shown once, never readable again.
    secret: str


@dataclass(frozen=True)
class RotatedSecret:
    secret: str
    # Until then the previous secret signs beside the new one (None: it stopped at once).
    previous_expires_at: datetime | None


@dataclass(frozen=True)
class WebhookDelivery:
    id: str
    tenant_id: str
    event_id: str
    endpoint_id: str
    event_type: str
    event_created_at: datetime
    status: DeliveryStatus
    round: int
    attempts_count: int
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # A registered endpoint, or the hidden one a `notify_url` made; None where the read did not join it.
    endpoint_kind: EndpointKind | None = None


@dataclass(frozen=True)
class DeliveryWithAttempts:
    delivery: WebhookDelivery
    # The latest attempts, newest first.
    attempts: list["WebhookAttempt"]
    # Whether older attempts exist beyond `attempts`.
    attempts_has_more: bool


@dataclass(frozen=True)
class NotifySecret:
    """The tenant's notify secret as reads show it: never the secret itself."""

    # When the current secret was made; None: the tenant has none yet.
    created_at: datetime | None
    # Until then a rotated secret still signs beside the current one.
    previous_expires_at: datetime | None


@dataclass(frozen=True)
class NotifyTarget:
    """What `prepare_notify_url` made ready: the hidden endpoint, and the notify secret when it
    was created just now (shown once)."""

    endpoint_id: str
    secret_created: str | None


@dataclass(frozen=True)
class WebhookAttempt:
    id: str
    delivery_id: str
    tenant_id: str
    endpoint_id: str
    round: int
    attempt_number: int
    url: str
    webhook_timestamp: int | None
    created_at: datetime
    latency_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    outcome: str


def _endpoint(row: asyncpg.Record) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        tenant_id=row["tenant_id"],
        kind=EndpointKind(row["kind"]),
        url=row["url"],
        description=row["description"],
        enabled_events=list(row["enabled_events"]),
        status=EndpointStatus(row["status"]),
        disabled_reason=DisabledReason(row["disabled_reason"]) if row["disabled_reason"] else None,
        failing_since=row["failing_since"],
        failing_marked_at=row["failing_marked_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
    )


def _delivery(row: asyncpg.Record) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        tenant_id=row["tenant_id"],
        event_id=row["event_id"],
        endpoint_id=row["endpoint_id"],
        event_type=row["event_type"],
        event_created_at=row["event_created_at"],
        status=DeliveryStatus(row["status"]),
        round=row["round"],
        attempts_count=row["attempts_count"],
        last_attempt_at=row["last_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        delivered_at=row["delivered_at"],
        completed_at=row["completed_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        endpoint_kind=EndpointKind(row["endpoint_kind"]) if row.get("endpoint_kind") is not None else None,
    )


def _attempt(row: asyncpg.Record) -> WebhookAttempt:
    return WebhookAttempt(**{name: row[name] for name in WebhookAttempt.__dataclass_fields__})


@asynccontextmanager
async def _transaction(connection: Connection) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(connection, asyncpg.Pool):
        async with connection.acquire() as acquired, acquired.transaction():
            yield acquired
    else:
        async with connection.transaction():
            yield connection


# ---------------------------------------------------------------------------- secrets
async def _insert_secret(
    connection: asyncpg.Connection, *, secret_box: SecretBox, owner_kind: str, owner_id: str
) -> str:
    raw = secrets.token_bytes(SECRET_BYTES)
    secret_id = new_object_id(ID_PREFIX_SIGNING_SECRET)
    sealed = secret_box.seal(raw, context=_secret_context(secret_id=secret_id, owner_kind=owner_kind, owner_id=owner_id))
    await connection.execute(
        "INSERT INTO webhook_signing_secrets (id, owner_kind, owner_id, secret_sealed) VALUES ($1, $2, $3, $4)",
        secret_id,
        owner_kind,
        owner_id,
        sealed,
    )
    return format_signing_secret(raw)


async def _rotate_secret(
    connection: asyncpg.Connection, *, secret_box: SecretBox, owner_kind: str, owner_id: str, overlap_s: int
) -> RotatedSecret:
    """The current secret signs for `overlap_s` more beside a new one; one overlap at a time,
    so a secret rotated earlier and still overlapping stops now."""
    validate_rotation_overlap_s(overlap_s)
    # Rotations of one owner run one at a time.
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext('webhook_secret/' || $1 || '/' || $2))", owner_kind, owner_id)
    now = await connection.fetchval("SELECT now()")
    await connection.execute(
        "DELETE FROM webhook_signing_secrets WHERE owner_kind = $1 AND owner_id = $2 AND expires_at IS NOT NULL",
        owner_kind,
        owner_id,
    )
    current = await connection.fetchval(
        "SELECT 1 FROM webhook_signing_secrets WHERE owner_kind = $1 AND owner_id = $2 AND expires_at IS NULL", owner_kind, owner_id
    )
    # Nothing signs yet (a tenant's first notify secret): there is no previous secret to keep.
    previous_expires_at = now + timedelta(seconds=overlap_s) if overlap_s > 0 and current is not None else None
    if previous_expires_at is None:
        await connection.execute(
            "DELETE FROM webhook_signing_secrets WHERE owner_kind = $1 AND owner_id = $2", owner_kind, owner_id
        )
    else:
        await connection.execute(
            "UPDATE webhook_signing_secrets SET expires_at = $3 WHERE owner_kind = $1 AND owner_id = $2 AND expires_at IS NULL",
            owner_kind,
            owner_id,
            previous_expires_at,
        )
    secret = await _insert_secret(connection, secret_box=secret_box, owner_kind=owner_kind, owner_id=owner_id)
    return RotatedSecret(secret=secret, previous_expires_at=previous_expires_at)


# ---------------------------------------------------------------------------- endpoints
async def create_endpoint(
    connection: Connection,
    *,
    secret_box: SecretBox,
    url_policy: UrlPolicy,
    tenant_id: str,
    url: str,
    enabled_events: Sequence[str],
    description: str = "",
) -> CreatedWebhookEndpoint:
    """A new endpoint and its first signing secret, returned once."""
    parse_target_url(url, policy=url_policy)
    events = validate_enabled_events(enabled_events)
    validate_description(description)
    endpoint_id = new_object_id(ID_PREFIX_ENDPOINT)
    async with _transaction(connection) as transaction:
        # One tenant's creations run one at a time, so two cannot both pass the count.
        await transaction.execute("SELECT pg_advisory_xact_lock(hashtext('webhook_endpoints/' || $1))", tenant_id)
        count = await transaction.fetchval(
            "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1 AND kind = 'endpoint' AND deleted_at IS NULL",
            tenant_id,
        )
        if count >= ENDPOINTS_PER_TENANT_MAX:
            raise WebhookConflict(
                f"a tenant has at most {ENDPOINTS_PER_TENANT_MAX} webhook endpoints; delete one first",
                code="webhook_endpoints_limit",
            )
        row = await transaction.fetchrow(
            """
            INSERT INTO webhook_endpoints (id, tenant_id, kind, url, description, enabled_events)
            VALUES ($1, $2, 'endpoint', $3, $4, $5) RETURNING *
            """,
            endpoint_id,
            tenant_id,
            url,
            description,
            events,
        )
        secret = await _insert_secret(transaction, secret_box=secret_box, owner_kind=_OWNER_ENDPOINT, owner_id=endpoint_id)
    return CreatedWebhookEndpoint(endpoint=_endpoint(row), secret=secret)


async def get_endpoint(connection: Connection, *, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = await connection.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL", endpoint_id, tenant_id
    )
    if row is None:
        raise WebhookEndpointNotFound(endpoint_id)
    return _endpoint(row)


async def list_endpoints(
    connection: Connection, *, tenant_id: str, page: PageRequest, kind: EndpointKind = EndpointKind.ENDPOINT
) -> Page[WebhookEndpoint]:
    scope: list[Clause] = [("tenant_id = {}", tenant_id), ("deleted_at IS NULL", NO_VALUE), ("kind = {}", str(kind))]
    result = await fetch_page(connection, table="webhook_endpoints", scope=scope, filters=[], page=page)
    return Page(items=[_endpoint(row) for row in result.items], has_more=result.has_more)


async def update_endpoint(
    connection: Connection,
    *,
    url_policy: UrlPolicy,
    tenant_id: str,
    endpoint_id: str,
    url: str | None = None,
    description: str | None = None,
    enabled_events: Sequence[str] | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given (None: unchanged). `enabled=True` also re-enables an endpoint that
    answered 410; `enabled=False` disables it by the merchant's choice."""
    if url is not None:
        parse_target_url(url, policy=url_policy)
    events = validate_enabled_events(enabled_events) if enabled_events is not None else None
    if description is not None:
        validate_description(description)
    status, reason = None, None
    if enabled is True:
        status = str(EndpointStatus.ENABLED)
    elif enabled is False:
        status, reason = str(EndpointStatus.DISABLED), str(DisabledReason.MERCHANT)
    row = await connection.fetchrow(
        """
        UPDATE webhook_endpoints SET
            url = COALESCE($3, url),
            description = COALESCE($4, description),
            enabled_events = COALESCE($5, enabled_events),
            status = COALESCE($6, status),
            disabled_reason = CASE WHEN $6::text IS NULL THEN disabled_reason ELSE $7 END,
            updated_at = now()
        WHERE id = $1 AND tenant_id = $2 AND kind = 'endpoint' AND deleted_at IS NULL
        RETURNING *
        """,
        endpoint_id,
        tenant_id,
        url,
        description,
        events,
        status,
        reason,
    )
    if row is None:
        raise WebhookEndpointNotFound(endpoint_id)
    return _endpoint(row)


async def delete_endpoint(connection: Connection, *, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """Stop delivering to it and forget its secrets; its delivery log stays. Pending deliveries
    end `cancelled` at their next attempt."""
    async with _transaction(connection) as transaction:
        row = await transaction.fetchrow(
            """
            UPDATE webhook_endpoints SET deleted_at = now(), updated_at = now()
            WHERE id = $1 AND tenant_id = $2 AND kind = 'endpoint' AND deleted_at IS NULL RETURNING *
            """,
            endpoint_id,
            tenant_id,
        )
        if row is None:
            raise WebhookEndpointNotFound(endpoint_id)
        await transaction.execute(
            "DELETE FROM webhook_signing_secrets WHERE owner_kind = $1 AND owner_id = $2", _OWNER_ENDPOINT, endpoint_id
        )
    return _endpoint(row)


async def rotate_endpoint_secret(
    connection: Connection, *, secret_box: SecretBox, tenant_id: str, endpoint_id: str, overlap_s: int
) -> RotatedSecret:
    """A new secret, returned once; the old one keeps signing beside it for `overlap_s`, so
    receivers can switch without refusing a delivery (every delivery carries both signatures)."""
    async with _transaction(connection) as transaction:
        exists = await transaction.fetchval(
            "SELECT 1 FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2 AND kind = 'endpoint' AND deleted_at IS NULL FOR UPDATE",
            endpoint_id,
            tenant_id,
        )
        if exists is None:
            raise WebhookEndpointNotFound(endpoint_id)
        return await _rotate_secret(
            transaction, secret_box=secret_box, owner_kind=_OWNER_ENDPOINT, owner_id=endpoint_id, overlap_s=overlap_s
        )


async def rotate_notify_secret(connection: Connection, *, secret_box: SecretBox, tenant_id: str, overlap_s: int) -> RotatedSecret:
    """A new notify secret (the one that signs deliveries to the `notify_url`s a tenant's objects
    name), returned once; the previous one keeps signing beside it for `overlap_s`. The first
    rotation of a tenant without one creates it."""
    async with _transaction(connection) as transaction:
        return await _rotate_secret(
            transaction, secret_box=secret_box, owner_kind=_OWNER_TENANT, owner_id=tenant_id, overlap_s=overlap_s
        )


async def get_notify_secret(connection: Connection, *, tenant_id: str) -> NotifySecret:
    """When the tenant's notify secret was made and until when a rotated one still signs."""
    rows = await connection.fetch(
        """
        SELECT created_at, expires_at FROM webhook_signing_secrets
        WHERE owner_kind = $1 AND owner_id = $2 AND (expires_at IS NULL OR expires_at > now())
        ORDER BY created_at DESC LIMIT $3
        """,
        _OWNER_TENANT,
        tenant_id,
        _SIGNING_SECRETS_MAX,
    )
    current = next((row for row in rows if row["expires_at"] is None), None)
    previous = [row["expires_at"] for row in rows if row["expires_at"] is not None]
    return NotifySecret(created_at=current["created_at"] if current else None, previous_expires_at=max(previous, default=None))


async def _ensure_notify_secret(connection: asyncpg.Connection, *, secret_box: SecretBox, tenant_id: str) -> str | None:
    """The tenant's notify secret, created if it has none: returns it when created (once), else
    None. Runs inside the caller's transaction."""
    exists = "SELECT 1 FROM webhook_signing_secrets WHERE owner_kind = $1 AND owner_id = $2 AND expires_at IS NULL"
    if await connection.fetchval(exists, _OWNER_TENANT, tenant_id) is not None:
        return None
    # The rotations' lock: creations and rotations of one tenant's secret run one at a time.
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext('webhook_secret/' || $1 || '/' || $2))", _OWNER_TENANT, tenant_id)
    if await connection.fetchval(exists, _OWNER_TENANT, tenant_id) is not None:
        return None
    return await _insert_secret(connection, secret_box=secret_box, owner_kind=_OWNER_TENANT, owner_id=tenant_id)


async def _upsert_notify_endpoint(connection: asyncpg.Connection, *, tenant_id: str, url: str, enable: bool) -> str:
    """The hidden endpoint of kind `notify_url` for (tenant, url); `enable` also enables it again
    when a 410 had disabled it."""
    return await connection.fetchval(
        """
        INSERT INTO webhook_endpoints (id, tenant_id, kind, url, enabled_events) VALUES ($1, $2, 'notify_url', $3, '{*}')
        ON CONFLICT (tenant_id, url) WHERE kind = 'notify_url' DO UPDATE SET
            status = CASE WHEN $4 THEN 'enabled' ELSE webhook_endpoints.status END,
            disabled_reason = CASE WHEN $4 THEN NULL ELSE webhook_endpoints.disabled_reason END,
            updated_at = CASE WHEN $4 AND webhook_endpoints.status <> 'enabled' THEN now() ELSE webhook_endpoints.updated_at END
        RETURNING id
        """,
        new_object_id(ID_PREFIX_ENDPOINT),
        tenant_id,
        url,
        enable,
    )


async def prepare_notify_url(
    connection: Connection, *, secret_box: SecretBox, url_policy: UrlPolicy, tenant_id: str, url: str, actor: Actor
) -> NotifyTarget:
    """Ready a `notify_url` an object is about to name: the URL checked like an endpoint's (the
    WebhookRuleError names `notify_url`), its hidden endpoint made (or enabled again: a new object
    naming a URL that once answered 410 asks for deliveries there), and the tenant's notify secret
    created on this first need, returned once and audited."""
    parse_target_url(url, policy=url_policy, param="notify_url")
    async with _transaction(connection) as transaction:
        endpoint_id = await _upsert_notify_endpoint(transaction, tenant_id=tenant_id, url=url, enable=True)
        secret = await _ensure_notify_secret(transaction, secret_box=secret_box, tenant_id=tenant_id)
        if secret is not None:
            await record_audit_event(
                transaction,
                tenant_id=tenant_id,
                actor=actor,
                action=AuditAction.NOTIFY_SECRET_CREATED,
                object_type=NOTIFY_SECRET_OBJECT_TYPE,
                object_id=tenant_id,
                data={"reason": "first notify_url"},
            )
    return NotifyTarget(endpoint_id=endpoint_id, secret_created=secret)


async def secret_expirations(connection: Connection, *, tenant_id: str, endpoint_id: str) -> list[datetime | None]:
    """When each signing secret of an endpoint stops (None: the current one), newest first. Never
    the secrets themselves."""
    await get_endpoint(connection, tenant_id=tenant_id, endpoint_id=endpoint_id)
    rows = await connection.fetch(
        """
        SELECT expires_at FROM webhook_signing_secrets
        WHERE owner_kind = $1 AND owner_id = $2 AND (expires_at IS NULL OR expires_at > now())
        ORDER BY created_at DESC
        """,
        _OWNER_ENDPOINT,
        endpoint_id,
    )
    return [row["expires_at"] for row in rows]


# ---------------------------------------------------------------------------- deliveries (reads)
async def get_delivery(connection: Connection, *, tenant_id: str, delivery_id: str) -> WebhookDelivery:
    row = await connection.fetchrow("SELECT * FROM webhook_deliveries WHERE id = $1 AND tenant_id = $2", delivery_id, tenant_id)
    if row is None:
        raise WebhookDeliveryNotFound(delivery_id)
    return _delivery(row)


async def list_deliveries(
    connection: Connection,
    *,
    tenant_id: str,
    page: PageRequest,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    status: DeliveryStatus | None = None,
) -> Page[WebhookDelivery]:
    filters: list[Clause] = []
    if endpoint_id is not None:
        filters.append(("endpoint_id = {}", endpoint_id))
    if event_id is not None:
        filters.append(("event_id = {}", event_id))
    if status is not None:
        filters.append(("status = {}", str(status)))
    result = await fetch_page(connection, table="webhook_deliveries", scope=[("tenant_id = {}", tenant_id)], filters=filters, page=page)
    return Page(items=[_delivery(row) for row in result.items], has_more=result.has_more)


# Deliveries joined to their endpoint's kind: one query gives a page of either list.
_DELIVERIES_WITH_KIND = (
    "(SELECT d.*, w.kind AS endpoint_kind FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id) AS deliveries"
)


async def list_deliveries_with_attempts(
    connection: Connection,
    *,
    tenant_id: str,
    page: PageRequest,
    attempts_per_delivery_max: int,
    endpoint_id: str | None = None,
    event_id: str | None = None,
) -> Page[DeliveryWithAttempts]:
    """A page of deliveries (an endpoint's, an event's, or all), each with its latest attempts:
    one query for the page and one for every delivery's attempts, however long the page."""
    assert 1 <= attempts_per_delivery_max <= 100
    filters: list[Clause] = []
    if endpoint_id is not None:
        filters.append(("endpoint_id = {}", endpoint_id))
    if event_id is not None:
        filters.append(("event_id = {}", event_id))
    result = await fetch_page(connection, table=_DELIVERIES_WITH_KIND, scope=[("tenant_id = {}", tenant_id)], filters=filters, page=page)
    deliveries = [_delivery(row) for row in result.items]
    attempts: dict[str, list[WebhookAttempt]] = {delivery.id: [] for delivery in deliveries}
    if deliveries:
        # One more than shown per delivery says whether older ones exist.
        rows = await connection.fetch(
            """
            SELECT * FROM (
                SELECT a.*, row_number() OVER (PARTITION BY a.delivery_id ORDER BY a.created_at DESC, a.id DESC) AS position
                FROM webhook_attempts a WHERE a.delivery_id = ANY($1::text[]) AND a.tenant_id = $2
            ) ranked
            WHERE position <= $3
            ORDER BY delivery_id, position
            """,
            list(attempts),
            tenant_id,
            attempts_per_delivery_max + 1,
        )
        for row in rows:
            attempts[row["delivery_id"]].append(_attempt(row))
    items = [
        DeliveryWithAttempts(
            delivery=delivery,
            attempts=attempts[delivery.id][:attempts_per_delivery_max],
            attempts_has_more=len(attempts[delivery.id]) > attempts_per_delivery_max,
        )
        for delivery in deliveries
    ]
    return Page(items=items, has_more=result.has_more)


async def list_attempts(connection: Connection, *, tenant_id: str, delivery_id: str, page: PageRequest) -> Page[WebhookAttempt]:
    """A delivery's attempts, newest first: time, status code, latency, truncated response, error."""
    scope: list[Clause] = [("tenant_id = {}", tenant_id), ("delivery_id = {}", delivery_id)]
    result = await fetch_page(connection, table="webhook_attempts", scope=scope, filters=[], page=page)
    return Page(items=[_attempt(row) for row in result.items], has_more=result.has_more)


async def request_redelivery(
    connection: Connection, *, tenant_id: str, delivery_id: str, actor: Actor | None = None
) -> WebhookDelivery:
    """Deliver once more (a new round, same `webhook-id`). Idempotent: while a round is pending,
    asking again changes nothing. The dispatcher starts the round's workflow. With an `actor`,
    each new round is audited in the same transaction (asking again while pending is not)."""
    async with _transaction(connection) as transaction:
        row = await transaction.fetchrow(
            """
            SELECT d.*, w.kind AS endpoint_kind, w.status AS endpoint_status, w.deleted_at AS endpoint_deleted_at
            FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
            WHERE d.id = $1 AND d.tenant_id = $2 FOR UPDATE OF d
            """,
            delivery_id,
            tenant_id,
        )
        if row is None:
            raise WebhookDeliveryNotFound(delivery_id)
        if row["status"] == DeliveryStatus.PENDING:
            return _delivery(row)
        if row["endpoint_deleted_at"] is not None or row["endpoint_status"] != EndpointStatus.ENABLED:
            if row["endpoint_kind"] == EndpointKind.NOTIFY_URL:
                message = (
                    f"the notify_url of endpoint {row['endpoint_id']} answered 410 Gone and is disabled; "
                    "a new payment intent naming that URL enables it again"
                )
            else:
                message = f"endpoint {row['endpoint_id']} is deleted or disabled; enable it before redelivering"
            raise WebhookConflict(message, code="webhook_endpoint_disabled")
        updated = await transaction.fetchrow(
            """
            UPDATE webhook_deliveries SET round = round + 1, status = 'pending', next_attempt_at = now(),
                completed_at = NULL, updated_at = now()
            WHERE id = $1 RETURNING *, $2::text AS endpoint_kind
            """,
            delivery_id,
            row["endpoint_kind"],
        )
        if actor is not None:
            await record_audit_event(
                transaction,
                tenant_id=tenant_id,
                actor=actor,
                action=AuditAction.WEBHOOK_DELIVERY_REDELIVERED,
                object_type="webhook_delivery",
                object_id=delivery_id,
                data={
                    "event_id": updated["event_id"],
                    "endpoint_id": updated["endpoint_id"],
                    "round": updated["round"],
                    "previous_status": row["status"],
                },
            )
        await transaction.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return _delivery(updated)


# ---------------------------------------------------------------------------- dispatch
async def set_dispatch_route(connection: Connection, *, tenant_id: str, route: str) -> None:
    """Serve a tenant's webhooks from a dedicated dispatcher (and its task queue's workers), or
    back on the default one."""
    if route == DEFAULT_ROUTE:
        await connection.execute("DELETE FROM webhook_dispatch_routes WHERE tenant_id = $1", tenant_id)
        return
    await connection.execute(
        """
        INSERT INTO webhook_dispatch_routes (tenant_id, route) VALUES ($1, $2)
        ON CONFLICT (tenant_id) DO UPDATE SET route = EXCLUDED.route
        """,
        tenant_id,
        route,
    )


def _route_clause(alias: str, argument: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM webhook_dispatch_routes r WHERE r.tenant_id = {alias}.tenant_id) AND {argument}::text = 'default'"
        f" OR {alias}.tenant_id IN (SELECT r.tenant_id FROM webhook_dispatch_routes r WHERE r.route = {argument})"
    )


@dataclass(frozen=True)
class DeliveryToStart:
    delivery_id: str
    tenant_id: str
    event_id: str
    endpoint_id: str
    round: int


async def fan_out_events(pool: asyncpg.Pool, *, secret_box: SecretBox, route: str, batch_size_max: int) -> int:
    """Take up to `batch_size_max` queued events of a route and create their deliveries: one per
    enabled endpoint of the tenant that wants the event type, and one to the object's own
    `notify_url` (the event's `data.notify_url`). Queue rows go in the same transaction, so an
    event fans out exactly once. Returns how many events were taken."""
    assert 1 <= batch_size_max <= 1000
    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(
            f"""
            WITH claimed AS (
                SELECT q.event_id FROM webhook_event_queue q
                WHERE {_route_clause('q', '$1')}
                ORDER BY q.enqueued_at, q.event_id
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            SELECT claimed.event_id, e.tenant_id, e.type, e.created_at,
                   -- A notify_url longer than any valid URL is ignored: stored, it would break the
                   -- index, fail this transaction on every try and stall the whole route.
                   CASE WHEN jsonb_typeof(e.data) = 'object' AND jsonb_typeof(e.data -> 'notify_url') = 'string'
                         AND length(e.data ->> 'notify_url') <= $3 THEN e.data ->> 'notify_url' END AS notify_url
            FROM claimed LEFT JOIN events e ON e.id = claimed.event_id
            """,
            route,
            batch_size_max,
            URL_LENGTH_MAX,
        )
        if not rows:
            return 0
        event_ids = [row["event_id"] for row in rows]
        await connection.execute(
            """
            INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, event_type, event_created_at)
            SELECT 'whd_' || e.id || '_' || w.id, e.tenant_id, e.id, w.id, e.type, e.created_at
            FROM events e JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id
            WHERE e.id = ANY($1::text[]) AND w.kind = 'endpoint' AND w.deleted_at IS NULL AND w.status = 'enabled'
              AND ('*' = ANY(w.enabled_events) OR e.type = ANY(w.enabled_events))
            ON CONFLICT (event_id, endpoint_id) DO NOTHING
            """,
            event_ids,
        )
        for row in rows:
            if row["notify_url"] and row["tenant_id"] is not None:
                await _fan_out_to_notify_url(connection, secret_box=secret_box, event=row)
        await connection.execute("DELETE FROM webhook_event_queue WHERE event_id = ANY($1::text[])", event_ids)
    return len(rows)


async def _fan_out_to_notify_url(connection: asyncpg.Connection, *, secret_box: SecretBox, event: asyncpg.Record) -> None:
    """The API readies every notify_url it accepts (prepare_notify_url); this makes the endpoint
    and the secret only for events written some other way, so a delivery always has both."""
    tenant_id, url = event["tenant_id"], event["notify_url"]
    endpoint_id = await _upsert_notify_endpoint(connection, tenant_id=tenant_id, url=url, enable=False)
    await _ensure_notify_secret(connection, secret_box=secret_box, tenant_id=tenant_id)
    await connection.execute(
        """
        INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, event_type, event_created_at)
        SELECT $1, $2, $3, w.id, $5, $6 FROM webhook_endpoints w WHERE w.id = $4 AND w.status = 'enabled'
        ON CONFLICT (event_id, endpoint_id) DO NOTHING
        """,
        delivery_id_for(event_id=event["event_id"], endpoint_id=endpoint_id),
        tenant_id,
        event["event_id"],
        endpoint_id,
        event["type"],
        event["created_at"],
    )


async def list_deliveries_to_start(pool: asyncpg.Pool, *, route: str, limit: int) -> list[DeliveryToStart]:
    """Deliveries whose current round has no workflow known to be started: new ones, redelivered
    ones, and any whose start was lost to a crash."""
    assert 1 <= limit <= 1000
    rows = await pool.fetch(
        f"""
        SELECT d.id, d.tenant_id, d.event_id, d.endpoint_id, d.round FROM webhook_deliveries d
        WHERE d.started_round < d.round AND ({_route_clause('d', '$1')})
        ORDER BY d.created_at LIMIT $2
        """,
        route,
        limit,
    )
    return [
        DeliveryToStart(
            delivery_id=row["id"], tenant_id=row["tenant_id"], event_id=row["event_id"], endpoint_id=row["endpoint_id"], round=row["round"]
        )
        for row in rows
    ]


async def mark_deliveries_started(pool: asyncpg.Pool, *, started: Sequence[tuple[str, int]]) -> None:
    if not started:
        return
    await pool.execute(
        """
        UPDATE webhook_deliveries d SET started_round = GREATEST(d.started_round, v.round)
        FROM unnest($1::text[], $2::int[]) AS v (id, round) WHERE d.id = v.id
        """,
        [delivery_id for delivery_id, _ in started],
        [round_number for _, round_number in started],
    )


# ---------------------------------------------------------------------------- attempts (the sender's side)
@dataclass(frozen=True)
class AttemptContext:
    """What one attempt needs, read in one go. `secrets` are raw HMAC keys, newest first."""

    delivery_id: str
    tenant_id: str
    endpoint_id: str
    delivery_status: DeliveryStatus
    round: int
    url: str
    endpoint_usable: bool  # not deleted, not disabled
    event_found: bool
    event_id: str
    event_type: str
    event_created_at: datetime
    event_api_version: str
    event_data: Any
    secrets: list[bytes]


async def load_attempt_context(pool: asyncpg.Pool, *, secret_box: SecretBox, delivery_id: str) -> AttemptContext | None:
    row = await pool.fetchrow(
        """
        SELECT d.id, d.tenant_id, d.endpoint_id, d.status, d.round, d.event_id, d.event_type, d.event_created_at,
               w.url, w.kind, w.status AS endpoint_status, w.deleted_at,
               e.id IS NOT NULL AS event_found, e.api_version, e.data::text AS data
        FROM webhook_deliveries d
        JOIN webhook_endpoints w ON w.id = d.endpoint_id
        LEFT JOIN events e ON e.id = d.event_id
        WHERE d.id = $1
        """,
        delivery_id,
    )
    if row is None:
        return None
    owner_kind, owner_id = (
        (_OWNER_TENANT, row["tenant_id"]) if row["kind"] == EndpointKind.NOTIFY_URL else (_OWNER_ENDPOINT, row["endpoint_id"])
    )
    secret_rows = await pool.fetch(
        """
        SELECT id, secret_sealed FROM webhook_signing_secrets
        WHERE owner_kind = $1 AND owner_id = $2 AND (expires_at IS NULL OR expires_at > now())
        ORDER BY created_at DESC LIMIT $3
        """,
        owner_kind,
        owner_id,
        _SIGNING_SECRETS_MAX,
    )
    opened = [
        secret_box.open(r["secret_sealed"], context=_secret_context(secret_id=r["id"], owner_kind=owner_kind, owner_id=owner_id))
        for r in secret_rows
    ]
    return AttemptContext(
        delivery_id=row["id"],
        tenant_id=row["tenant_id"],
        endpoint_id=row["endpoint_id"],
        delivery_status=DeliveryStatus(row["status"]),
        round=row["round"],
        url=row["url"],
        endpoint_usable=row["deleted_at"] is None and row["endpoint_status"] == EndpointStatus.ENABLED and bool(opened),
        event_found=row["event_found"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        event_created_at=row["event_created_at"],
        event_api_version=row["api_version"] or "",
        event_data=json.loads(row["data"]) if row["data"] is not None else None,
        secrets=opened,
    )


@dataclass(frozen=True)
class AttemptRecord:
    """One HTTP request as it happened; `outcome` is what it meant for the delivery."""

    delivery_id: str
    round: int
    attempt_number: int
    url: str
    webhook_timestamp: int | None
    started_at: datetime
    latency_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    outcome: str  # delivered | retry | failed | gone
    next_attempt_at: datetime | None
    # Whether the answer counts against the endpoint's health (a refused SSRF target does not
    # say the receiver is down).
    endpoint_failed: bool


@dataclass(frozen=True)
class RecordedAttempt:
    # True when this attempt moved the delivery to a final status (delivered, failed).
    completed: bool
    endpoint_events: list[str]


async def record_attempt(pool: asyncpg.Pool, *, record: AttemptRecord, failing_after_s: float) -> RecordedAttempt:
    """The attempt, the delivery's new state and the endpoint's health, in one transaction. A
    410 disables the endpoint; failing for `failing_after_s` marks it failing. Either tells the
    tenant with an event, once."""
    assert record.outcome in ("delivered", "retry", "failed", "gone")
    status = {
        "delivered": DeliveryStatus.DELIVERED,
        "retry": DeliveryStatus.PENDING,
        "failed": DeliveryStatus.FAILED,
        "gone": DeliveryStatus.FAILED,
    }[record.outcome]
    response_body = truncate_text(record.response_body, RESPONSE_BODY_STORED_MAX) if record.response_body is not None else None
    error = truncate_text(record.error, ERROR_STORED_MAX) if record.error is not None else None
    endpoint_events: list[str] = []
    async with pool.acquire() as connection, connection.transaction():
        delivery = await connection.fetchrow(
            """
            UPDATE webhook_deliveries SET
                attempts_count = attempts_count + 1,
                last_attempt_at = $3, last_status_code = $4, last_error = $5,
                status = $6,
                next_attempt_at = $7,
                delivered_at = CASE WHEN $6 = 'delivered' THEN clock_timestamp() ELSE delivered_at END,
                completed_at = CASE WHEN $6 = 'pending' THEN NULL ELSE clock_timestamp() END,
                updated_at = now()
            WHERE id = $1 AND round = $2 AND status = 'pending'
            RETURNING tenant_id, endpoint_id
            """,
            record.delivery_id,
            record.round,
            record.started_at,
            record.status_code,
            error,
            str(status),
            record.next_attempt_at,
        )
        ids = delivery or await connection.fetchrow(
            "SELECT tenant_id, endpoint_id FROM webhook_deliveries WHERE id = $1", record.delivery_id
        )
        assert ids is not None, record.delivery_id
        await connection.execute(
            """
            INSERT INTO webhook_attempts (id, delivery_id, tenant_id, endpoint_id, round, attempt_number, url, webhook_timestamp,
                created_at, latency_ms, status_code, response_body, error, outcome)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
            """,
            new_object_id(ID_PREFIX_ATTEMPT),
            record.delivery_id,
            ids["tenant_id"],
            ids["endpoint_id"],
            record.round,
            record.attempt_number,
            record.url,
            record.webhook_timestamp,
            record.started_at,
            record.latency_ms,
            record.status_code,
            response_body,
            error,
            record.outcome,
        )
        if record.outcome == "delivered":
            # Only a recovering endpoint is written to: a healthy one's row is never locked.
            await connection.execute(
                """
                UPDATE webhook_endpoints SET failing_since = NULL, failing_marked_at = NULL, updated_at = now()
                WHERE id = $1 AND (failing_since IS NOT NULL OR failing_marked_at IS NOT NULL)
                """,
                ids["endpoint_id"],
            )
        elif record.endpoint_failed:
            endpoint_events += await _endpoint_failed(
                connection, endpoint_id=ids["endpoint_id"], gone=record.outcome == "gone", failing_after_s=failing_after_s
            )
    return RecordedAttempt(completed=delivery is not None and status != DeliveryStatus.PENDING, endpoint_events=endpoint_events)


async def _endpoint_failed(connection: asyncpg.Connection, *, endpoint_id: str, gone: bool, failing_after_s: float) -> list[str]:
    events: list[str] = []
    await connection.execute(
        "UPDATE webhook_endpoints SET failing_since = now(), updated_at = now() WHERE id = $1 AND failing_since IS NULL",
        endpoint_id,
    )
    if gone:
        row = await connection.fetchrow(
            """
            UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = 'gone', updated_at = now()
            WHERE id = $1 AND status = 'enabled' RETURNING *
            """,
            endpoint_id,
        )
        if row is not None:
            events.append(await _insert_endpoint_event(connection, endpoint=_endpoint(row), event_type=EventType.WEBHOOK_ENDPOINT_DISABLED))
        return events
    row = await connection.fetchrow(
        """
        UPDATE webhook_endpoints SET failing_marked_at = now(), updated_at = now()
        WHERE id = $1 AND failing_marked_at IS NULL AND failing_since <= now() - make_interval(secs => $2)
        RETURNING *
        """,
        endpoint_id,
        failing_after_s,
    )
    if row is not None:
        events.append(await _insert_endpoint_event(connection, endpoint=_endpoint(row), event_type=EventType.WEBHOOK_ENDPOINT_FAILING))
    return events


async def _insert_endpoint_event(connection: asyncpg.Connection, *, endpoint: WebhookEndpoint, event_type: EventType) -> str:
    """Tell the tenant through its own webhooks (the events table feeds them, and the API's
    event list): one event per endpoint, change and moment."""
    at = endpoint.failing_marked_at if event_type is EventType.WEBHOOK_ENDPOINT_FAILING else endpoint.updated_at
    assert at is not None
    event_id = webhook_endpoint_event_id(endpoint_id=endpoint.id, event_type=event_type, at=at)
    await insert_events(
        connection,
        events=[NewEvent(id=event_id, tenant_id=endpoint.tenant_id, type=event_type, object_id=endpoint.id, data=endpoint.public_data())],
    )
    return event_id


async def cancel_delivery(pool: asyncpg.Pool, *, delivery_id: str, round_number: int, reason: str) -> bool:
    """End a pending round that cannot be delivered (endpoint deleted or disabled, event gone)."""
    status = await pool.execute(
        """
        UPDATE webhook_deliveries SET status = 'cancelled', last_error = $3, next_attempt_at = NULL,
            completed_at = clock_timestamp(), updated_at = now()
        WHERE id = $1 AND round = $2 AND status = 'pending'
        """,
        delivery_id,
        round_number,
        truncate_text(reason, ERROR_STORED_MAX),
    )
    return status.endswith(" 1")


__all__ = [
    "DEFAULT_ROUTE",
    "AttemptContext",
    "AttemptRecord",
    "CreatedWebhookEndpoint",
    "DeliveryToStart",
    "DeliveryWithAttempts",
    "NotifySecret",
    "NotifyTarget",
    "RecordedAttempt",
    "RotatedSecret",
    "SecretBox",
    "SecretUnsealError",
    "WebhookAttempt",
    "WebhookConflict",
    "WebhookDelivery",
    "WebhookDeliveryNotFound",
    "WebhookEndpoint",
    "WebhookEndpointNotFound",
    "WebhookRuleError",
    "cancel_delivery",
    "create_endpoint",
    "delete_endpoint",
    "fan_out_events",
    "get_delivery",
    "get_endpoint",
    "get_notify_secret",
    "list_attempts",
    "list_deliveries",
    "list_deliveries_with_attempts",
    "list_deliveries_to_start",
    "list_endpoints",
    "load_attempt_context",
    "mark_deliveries_started",
    "prepare_notify_url",
    "record_attempt",
    "request_redelivery",
    "rotate_endpoint_secret",
    "rotate_notify_secret",
    "secret_expirations",
    "set_dispatch_route",
]
