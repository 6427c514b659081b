"""Webhook endpoints: the ones a merchant registers, and the hidden ones a `notify_url` makes (one
per tenant and URL, signed with the tenant's notify secret); their health as deliveries find it,
told to the tenant with `webhook_endpoint.*` events.

Functions that write more than one row take a pool or a connection; on a connection they run in
a savepoint of the caller's transaction, so the API can add its audit event to the same
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

import asyncpg

from db.audit import NO_VALUE, Actor, Clause, Connection, fetch_page, new_object_id, record_audit_event
from db.events import NewEvent, insert_events
from db.pool import transaction
from db.secret_box import SecretBox
from db.webhook_secrets import (
    RotatedSecret,
    SecretOwner,
    delete_signing_secrets,
    ensure_notify_secret,
    insert_signing_secret,
    rotate_signing_secret,
    signing_secret_expirations,
)
from domain.events import EventType, webhook_endpoint_event_id, webhook_endpoint_object
from domain.pagination import Page, PageRequest
from domain.tenants import AuditAction
from domain.webhooks import (
    ENDPOINTS_PER_TENANT_MAX,
    ID_PREFIX_ENDPOINT,
    DisabledReason,
    EndpointHealth,
    EndpointKind,
    EndpointStatus,
    UrlPolicy,
    parse_target_url,
    validate_description,
    validate_enabled_events,
)

# The audit log's object type for a tenant's notify secret (its object id is the tenant's).
NOTIFY_SECRET_OBJECT_TYPE = "notify_secret"


class WebhookEndpointNotFound(LookupError):
    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"No such webhook endpoint: {endpoint_id}")
        self.endpoint_id = endpoint_id


class WebhookConflict(Exception):
    """The request is valid but the object's state refuses it: the API answers 409."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


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
        """The endpoint as an event's `data.object` (domain.events.webhook_endpoint_object): never a secret."""
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
class NotifyTarget:
    """What `prepare_notify_url` made ready: the hidden endpoint, and the notify secret when it
    was created just now (shown once)."""

    endpoint_id: str
    secret_created: str | None


def endpoint_from_row(row: asyncpg.Record) -> WebhookEndpoint:
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
    async with transaction(connection) as in_transaction:
        # One tenant's creations run one at a time, so two cannot both pass the count.
        await in_transaction.execute("SELECT pg_advisory_xact_lock(hashtext('webhook_endpoints/' || $1))", tenant_id)
        count = await in_transaction.fetchval(
            "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1 AND kind = 'endpoint' AND deleted_at IS NULL",
            tenant_id,
        )
        if count >= ENDPOINTS_PER_TENANT_MAX:
            raise WebhookConflict(
                f"a tenant has at most {ENDPOINTS_PER_TENANT_MAX} webhook endpoints; delete one first",
                code="webhook_endpoints_limit",
            )
        row = await in_transaction.fetchrow(
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
        secret = await insert_signing_secret(in_transaction, secret_box=secret_box, owner_kind=SecretOwner.ENDPOINT, owner_id=endpoint_id)
    return CreatedWebhookEndpoint(endpoint=endpoint_from_row(row), secret=secret)


async def get_endpoint(connection: Connection, *, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = await connection.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL", endpoint_id, tenant_id
    )
    if row is None:
        raise WebhookEndpointNotFound(endpoint_id)
    return endpoint_from_row(row)


async def list_endpoints(
    connection: Connection, *, tenant_id: str, page: PageRequest, kind: EndpointKind = EndpointKind.ENDPOINT
) -> Page[WebhookEndpoint]:
    scope: list[Clause] = [("tenant_id = {}", tenant_id), ("deleted_at IS NULL", NO_VALUE), ("kind = {}", str(kind))]
    result = await fetch_page(connection, table="webhook_endpoints", scope=scope, filters=[], page=page)
    return Page(items=[endpoint_from_row(row) for row in result.items], has_more=result.has_more)


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
    return endpoint_from_row(row)


async def delete_endpoint(connection: Connection, *, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """Stop delivering to it and forget its secrets; its delivery log stays. Pending deliveries
    end `cancelled` at their next attempt."""
    async with transaction(connection) as in_transaction:
        row = await in_transaction.fetchrow(
            """
            UPDATE webhook_endpoints SET deleted_at = now(), updated_at = now()
            WHERE id = $1 AND tenant_id = $2 AND kind = 'endpoint' AND deleted_at IS NULL RETURNING *
            """,
            endpoint_id,
            tenant_id,
        )
        if row is None:
            raise WebhookEndpointNotFound(endpoint_id)
        await delete_signing_secrets(in_transaction, owner_kind=SecretOwner.ENDPOINT, owner_id=endpoint_id)
    return endpoint_from_row(row)


async def rotate_endpoint_secret(
    connection: Connection, *, secret_box: SecretBox, tenant_id: str, endpoint_id: str, overlap_s: int
) -> RotatedSecret:
    """A new secret, returned once; the old one keeps signing beside it for `overlap_s`, so
    receivers can switch without refusing a delivery (every delivery carries both signatures)."""
    async with transaction(connection) as in_transaction:
        exists = await in_transaction.fetchval(
            "SELECT 1 FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2 AND kind = 'endpoint' AND deleted_at IS NULL FOR UPDATE",
            endpoint_id,
            tenant_id,
        )
        if exists is None:
            raise WebhookEndpointNotFound(endpoint_id)
        return await rotate_signing_secret(
            in_transaction, secret_box=secret_box, owner_kind=SecretOwner.ENDPOINT, owner_id=endpoint_id, overlap_s=overlap_s
        )


async def upsert_notify_endpoint(connection: asyncpg.Connection, *, tenant_id: str, url: str, enable: bool) -> str:
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
    async with transaction(connection) as in_transaction:
        endpoint_id = await upsert_notify_endpoint(in_transaction, tenant_id=tenant_id, url=url, enable=True)
        secret = await ensure_notify_secret(in_transaction, secret_box=secret_box, tenant_id=tenant_id)
        if secret is not None:
            await record_audit_event(
                in_transaction,
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
    return await signing_secret_expirations(connection, owner_kind=SecretOwner.ENDPOINT, owner_id=endpoint_id)


async def mark_endpoint_recovered(connection: asyncpg.Connection, *, endpoint_id: str) -> None:
    """A delivery got through: the endpoint is healthy again."""
    # Only a recovering endpoint is written to: a healthy one's row is never locked.
    await connection.execute(
        """
        UPDATE webhook_endpoints SET failing_since = NULL, failing_marked_at = NULL, updated_at = now()
        WHERE id = $1 AND (failing_since IS NOT NULL OR failing_marked_at IS NOT NULL)
        """,
        endpoint_id,
    )


async def mark_endpoint_failed(connection: asyncpg.Connection, *, endpoint_id: str, gone: bool, failing_after_s: float) -> list[str]:
    """An attempt failed in a way that says the receiver is down (inside the attempt's
    transaction). A 410 (`gone`) disables the endpoint; failing for `failing_after_s` marks it
    failing. Either tells the tenant with an event, once; returns those events' ids."""
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
            events.append(await _record_endpoint_event(connection, endpoint=endpoint_from_row(row), event_type=EventType.WEBHOOK_ENDPOINT_DISABLED))
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
        events.append(await _record_endpoint_event(connection, endpoint=endpoint_from_row(row), event_type=EventType.WEBHOOK_ENDPOINT_FAILING))
    return events


async def _record_endpoint_event(connection: asyncpg.Connection, *, endpoint: WebhookEndpoint, event_type: EventType) -> str:
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
