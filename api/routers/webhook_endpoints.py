"""A tenant's webhook endpoints and their delivery log: register an endpoint (its signing secret
shown once), list, read, change, delete it, rotate its secret with an overlap window; the tenant's
notify secret (which signs deliveries to the `notify_url`s its objects name): read its metadata,
rotate it; list the deliveries of an event or of an endpoint, each with its attempts; redeliver
one. Changes to endpoints and secrets, and redeliveries, are audited in the same transaction as
the change."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Iterator

import asyncpg
from fastapi import Body, Depends, Path, Request

from api.auth import TenantPrincipal, tenant_key
from db.settings import TIER_WRITE
from api.deps import PoolDep, secret_box, webhook_settings
from api.errors import ApiError, ErrorType, invalid_request, not_found
from api.idempotency import Idempotency
from api.pagination import PageParams, page_request_for
from api.routing import settle_router
from api.schemas_webhooks import (
    NotifySecretRead,
    NotifySecretRotation,
    WebhookDeliveryList,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointDeleted,
    WebhookEndpointList,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookSecretRotate,
    WebhookSecretRotation,
)
from db.audit import Actor, record_audit_event
from db.events import EventNotFound, require_event
from db.webhook_deliveries import WebhookDeliveryNotFound, list_attempts, list_deliveries_with_attempts, request_redelivery
from db.webhook_endpoints import (
    NOTIFY_SECRET_OBJECT_TYPE,
    WebhookConflict,
    WebhookEndpoint,
    WebhookEndpointNotFound,
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    list_endpoints,
    rotate_endpoint_secret,
    update_endpoint,
)
from db.webhook_secrets import get_notify_secret, rotate_notify_secret
from domain.pagination import Page, PageRequest
from domain.tenants import OBJECT_ID_LENGTH_MAX, OBJECT_ID_PATTERN, AuditAction, Scope
from domain.webhooks import ROTATION_OVERLAP_S_DEFAULT, EndpointKind, WebhookRuleError

router = settle_router(tags=["webhooks"])

WebhooksRead = Annotated[TenantPrincipal, tenant_key(Scope.WEBHOOKS_READ)]
WebhooksWrite = Annotated[TenantPrincipal, tenant_key(Scope.WEBHOOKS_WRITE)]

# Event ids are `evt_...` and may hold underscores (`evt_<intent>_0001`); a delivery's id is
# `whd_<event id>_<endpoint id>`.
EVENT_ID_PATTERN = r"^evt_[A-Za-z0-9][A-Za-z0-9_]{7,119}$"
EVENT_ID_LENGTH_MAX = 124
DELIVERY_ID_PATTERN = r"^whd_evt_[A-Za-z0-9][A-Za-z0-9_]{7,119}_[a-z]{2,8}_[A-Za-z0-9]{8,64}$"
DELIVERY_ID_LENGTH_MAX = 4 + EVENT_ID_LENGTH_MAX + 1 + OBJECT_ID_LENGTH_MAX
# Attempts shown with each delivery in a list; `attempts_has_more` says when there are older ones.
ATTEMPTS_SHOWN_MAX = 10
AUDIT_OBJECT_TYPE = "webhook_endpoint"

EndpointId = Annotated[
    str, Path(pattern=OBJECT_ID_PATTERN, max_length=OBJECT_ID_LENGTH_MAX, description="A webhook endpoint id, `we_...`.")
]
EventId = Annotated[str, Path(pattern=EVENT_ID_PATTERN, max_length=EVENT_ID_LENGTH_MAX, description="An event id, `evt_...`.")]
DeliveryId = Annotated[
    str,
    Path(
        pattern=DELIVERY_ID_PATTERN,
        max_length=DELIVERY_ID_LENGTH_MAX,
        description="A delivery id, `whd_<event id>_<endpoint id>`.",
    ),
]


# ---------------------------------------------------------------------------- plumbing
@contextlib.contextmanager
def webhook_errors() -> Iterator[None]:
    """The repository's errors, in the API's shape."""
    try:
        yield
    except WebhookRuleError as error:
        raise invalid_request(error.message, code=error.code, param=error.param) from None
    except WebhookEndpointNotFound as error:
        raise not_found(str(error), param="id") from None
    except WebhookDeliveryNotFound as error:
        raise not_found(str(error), param="id") from None
    except EventNotFound as error:
        raise not_found(str(error), param="id") from None
    except WebhookConflict as error:
        raise ApiError(409, type=ErrorType.INVALID_REQUEST, code=error.code, message=error.message) from None


async def _registered_endpoint(connection: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """An endpoint the tenant registered (not one a `notify_url` made), or WebhookEndpointNotFound."""
    endpoint = await get_endpoint(connection, tenant_id=tenant_id, endpoint_id=endpoint_id)
    if endpoint.kind is not EndpointKind.ENDPOINT:
        raise WebhookEndpointNotFound(endpoint_id)
    return endpoint


async def _audit(
    connection: asyncpg.Connection, *, principal: TenantPrincipal, actor: Actor, action: AuditAction, endpoint_id: str, data: dict[str, Any]
) -> None:
    await record_audit_event(
        connection,
        tenant_id=principal.tenant_id,
        actor=actor,
        action=action,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=endpoint_id,
        data=data,
    )


def _settings_of(endpoint: WebhookEndpointRead) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "enabled_events": endpoint.enabled_events,
        "description": endpoint.description,
        "status": str(endpoint.status),
    }


delivery_page_request = page_request_for(id_pattern=DELIVERY_ID_PATTERN, id_length_max=DELIVERY_ID_LENGTH_MAX, noun="delivery")

DeliveryPageParams = Annotated[PageRequest, Depends(delivery_page_request)]


async def _deliveries_with_attempts(
    connection: asyncpg.Connection, *, tenant_id: str, page: PageRequest, endpoint_id: str | None = None, event_id: str | None = None
) -> Page[WebhookDeliveryRead]:
    deliveries = await list_deliveries_with_attempts(
        connection, tenant_id=tenant_id, page=page, attempts_per_delivery_max=ATTEMPTS_SHOWN_MAX, endpoint_id=endpoint_id, event_id=event_id
    )
    return Page(items=[WebhookDeliveryRead.listed(item) for item in deliveries.items], has_more=deliveries.has_more)


# ---------------------------------------------------------------------------- endpoints
@router.post(
    "/v1/webhook_endpoints",
    status_code=201,
    response_model=WebhookEndpointCreated,
    summary="Register a webhook endpoint (its signing secret is shown once)",
)
async def create_webhook_endpoint(
    request: Request, principal: WebhooksWrite, pool: PoolDep, idempotency: Idempotency, body: WebhookEndpointCreate
) -> WebhookEndpointCreated:
    settings = webhook_settings(request)
    with webhook_errors():
        async with pool.acquire() as connection, connection.transaction():
            created = await create_endpoint(
                connection,
                secret_box=secret_box(request),
                url_policy=settings.url_policy,
                tenant_id=principal.tenant_id,
                url=body.url,
                enabled_events=body.enabled_events,
                description=body.description,
            )
            response = WebhookEndpointCreated.of_created(created.endpoint, created.secret)
            await _audit(
                connection,
                principal=principal,
                actor=principal.actor(request),
                action=AuditAction.WEBHOOK_ENDPOINT_CREATED,
                endpoint_id=created.endpoint.id,
                data=_settings_of(response),
            )
    return response


@router.get("/v1/webhook_endpoints", response_model=WebhookEndpointList, summary="List the tenant's webhook endpoints")
async def list_webhook_endpoints(principal: WebhooksRead, pool: PoolDep, page: PageParams) -> WebhookEndpointList:
    result = await list_endpoints(pool, tenant_id=principal.tenant_id, page=page)
    return WebhookEndpointList.of(result, url="/v1/webhook_endpoints", item=WebhookEndpointRead.of)


@router.get(
    "/v1/webhook_endpoints/{endpoint_id}", response_model=WebhookEndpointRead, summary="Retrieve a webhook endpoint (never its secret)"
)
async def retrieve_webhook_endpoint(principal: WebhooksRead, pool: PoolDep, endpoint_id: EndpointId) -> WebhookEndpointRead:
    with webhook_errors():
        return WebhookEndpointRead.of(await _registered_endpoint(pool, tenant_id=principal.tenant_id, endpoint_id=endpoint_id))


@router.patch(
    "/v1/webhook_endpoints/{endpoint_id}",
    response_model=WebhookEndpointRead,
    summary="Change a webhook endpoint's URL, events or description; disable or enable it",
)
async def update_webhook_endpoint(
    request: Request, principal: WebhooksWrite, pool: PoolDep, endpoint_id: EndpointId, body: WebhookEndpointUpdate
) -> WebhookEndpointRead:
    settings = webhook_settings(request)
    with webhook_errors():
        async with pool.acquire() as connection, connection.transaction():
            before = WebhookEndpointRead.of(
                await _registered_endpoint(connection, tenant_id=principal.tenant_id, endpoint_id=endpoint_id)
            )
            updated = WebhookEndpointRead.of(
                await update_endpoint(
                    connection,
                    url_policy=settings.url_policy,
                    tenant_id=principal.tenant_id,
                    endpoint_id=endpoint_id,
                    url=body.url,
                    description=body.description,
                    enabled_events=body.enabled_events,
                    enabled=None if body.disabled is None else not body.disabled,
                )
            )
            await _audit(
                connection,
                principal=principal,
                actor=principal.actor(request),
                action=AuditAction.WEBHOOK_ENDPOINT_UPDATED,
                endpoint_id=endpoint_id,
                data={"before": _settings_of(before), "after": _settings_of(updated)},
            )
    return updated


@router.delete(
    "/v1/webhook_endpoints/{endpoint_id}",
    response_model=WebhookEndpointDeleted,
    summary="Delete a webhook endpoint: no more deliveries, its secrets forgotten, its delivery log kept",
)
async def delete_webhook_endpoint(
    request: Request, principal: WebhooksWrite, pool: PoolDep, endpoint_id: EndpointId
) -> WebhookEndpointDeleted:
    with webhook_errors():
        async with pool.acquire() as connection, connection.transaction():
            deleted = await delete_endpoint(connection, tenant_id=principal.tenant_id, endpoint_id=endpoint_id)
            await _audit(
                connection,
                principal=principal,
                actor=principal.actor(request),
                action=AuditAction.WEBHOOK_ENDPOINT_DELETED,
                endpoint_id=endpoint_id,
                data=_settings_of(WebhookEndpointRead.of(deleted)),
            )
    return WebhookEndpointDeleted(id=deleted.id)


@router.post(
    "/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
    response_model=WebhookSecretRotation,
    summary="Rotate an endpoint's signing secret: the new one shown once, the old one signing beside it until the overlap ends",
    openapi_extra={"x-rate-limit-tier": TIER_WRITE},
)
async def rotate_webhook_secret(
    request: Request,
    principal: WebhooksWrite,
    pool: PoolDep,
    idempotency: Idempotency,
    endpoint_id: EndpointId,
    body: Annotated[WebhookSecretRotate | None, Body()] = None,
) -> WebhookSecretRotation:
    overlap_s = body.overlap_s if body is not None and body.overlap_s is not None else ROTATION_OVERLAP_S_DEFAULT
    with webhook_errors():
        async with pool.acquire() as connection, connection.transaction():
            rotated = await rotate_endpoint_secret(
                connection, secret_box=secret_box(request), tenant_id=principal.tenant_id, endpoint_id=endpoint_id, overlap_s=overlap_s
            )
            endpoint = await get_endpoint(connection, tenant_id=principal.tenant_id, endpoint_id=endpoint_id)
            await _audit(
                connection,
                principal=principal,
                actor=principal.actor(request),
                action=AuditAction.WEBHOOK_ENDPOINT_SECRET_ROTATED,
                endpoint_id=endpoint_id,
                data={
                    "overlap_s": overlap_s,
                    "previous_secret_expires_at": rotated.previous_expires_at.isoformat() if rotated.previous_expires_at else None,
                },
            )
    return WebhookSecretRotation.of(endpoint, rotated)


# ---------------------------------------------------------------------------- delivery log
@router.get(
    "/v1/webhook_endpoints/{endpoint_id}/deliveries",
    response_model=WebhookDeliveryList,
    summary="List an endpoint's deliveries, each with its latest attempts",
)
async def list_endpoint_deliveries(
    principal: WebhooksRead, pool: PoolDep, endpoint_id: EndpointId, page: DeliveryPageParams
) -> WebhookDeliveryList:
    with webhook_errors():
        async with pool.acquire() as connection:
            await _registered_endpoint(connection, tenant_id=principal.tenant_id, endpoint_id=endpoint_id)
            result = await _deliveries_with_attempts(connection, tenant_id=principal.tenant_id, page=page, endpoint_id=endpoint_id)
    return WebhookDeliveryList(data=result.items, has_more=result.has_more, url=f"/v1/webhook_endpoints/{endpoint_id}/deliveries")


@router.get(
    "/v1/events/{event_id}/deliveries",
    response_model=WebhookDeliveryList,
    summary="List an event's deliveries (one per endpoint), each with its latest attempts",
)
async def list_event_deliveries(
    principal: WebhooksRead, pool: PoolDep, event_id: EventId, page: DeliveryPageParams
) -> WebhookDeliveryList:
    with webhook_errors():
        async with pool.acquire() as connection:
            await require_event(connection, tenant_id=principal.tenant_id, event_id=event_id)
            result = await _deliveries_with_attempts(connection, tenant_id=principal.tenant_id, page=page, event_id=event_id)
    return WebhookDeliveryList(data=result.items, has_more=result.has_more, url=f"/v1/events/{event_id}/deliveries")


@router.post(
    "/v1/webhook_deliveries/{delivery_id}/redeliver",
    response_model=WebhookDeliveryRead,
    summary="Deliver an event to an endpoint once more (idempotent while a redelivery is pending; each new round is audited)",
    openapi_extra={"x-rate-limit-tier": TIER_WRITE},
)
async def redeliver_webhook(
    request: Request, principal: WebhooksWrite, pool: PoolDep, idempotency: Idempotency, delivery_id: DeliveryId
) -> WebhookDeliveryRead:
    with webhook_errors():
        async with pool.acquire() as connection:
            delivery = await request_redelivery(
                connection, tenant_id=principal.tenant_id, delivery_id=delivery_id, actor=principal.actor(request)
            )
            attempts = await list_attempts(
                connection, tenant_id=principal.tenant_id, delivery_id=delivery_id, page=PageRequest(limit=ATTEMPTS_SHOWN_MAX)
            )
    return WebhookDeliveryRead.of(delivery, attempts.items, attempts_has_more=attempts.has_more)


# ---------------------------------------------------------------------------- the notify secret
@router.get(
    "/v1/notify_secret",
    response_model=NotifySecretRead,
    summary="The tenant's notify secret (signs deliveries to notify_urls): when it was made, never the secret",
)
async def retrieve_notify_secret(principal: WebhooksRead, pool: PoolDep) -> NotifySecretRead:
    return NotifySecretRead.of(await get_notify_secret(pool, tenant_id=principal.tenant_id))


@router.post(
    "/v1/notify_secret/rotate",
    response_model=NotifySecretRotation,
    summary="Rotate (or first create) the notify secret: the new one shown once, the old one signing beside it until the overlap ends",
    openapi_extra={"x-rate-limit-tier": TIER_WRITE},
)
async def rotate_tenant_notify_secret(
    request: Request,
    principal: WebhooksWrite,
    pool: PoolDep,
    idempotency: Idempotency,
    body: Annotated[WebhookSecretRotate | None, Body()] = None,
) -> NotifySecretRotation:
    overlap_s = body.overlap_s if body is not None and body.overlap_s is not None else ROTATION_OVERLAP_S_DEFAULT
    with webhook_errors():
        async with pool.acquire() as connection, connection.transaction():
            rotated = await rotate_notify_secret(connection, secret_box=secret_box(request), tenant_id=principal.tenant_id, overlap_s=overlap_s)
            await record_audit_event(
                connection,
                tenant_id=principal.tenant_id,
                actor=principal.actor(request),
                action=AuditAction.NOTIFY_SECRET_ROTATED,
                object_type=NOTIFY_SECRET_OBJECT_TYPE,
                object_id=principal.tenant_id,
                data={
                    "overlap_s": overlap_s,
                    "previous_secret_expires_at": rotated.previous_expires_at.isoformat() if rotated.previous_expires_at else None,
                },
            )
            current = await get_notify_secret(connection, tenant_id=principal.tenant_id)
    return NotifySecretRotation(
        notify_secret=NotifySecretRead.of(current), secret=rotated.secret, previous_secret_expires_at=rotated.previous_expires_at
    )
