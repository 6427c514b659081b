"""Typed dependencies for what the app holds (settings, the database pool, the Temporal client), so
routes declare what they use instead of reaching into `request.app.state`."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from api.temporal import TemporalConnector
from db.secret_box import SecretBox
from db.settings import Settings
from db.settings import WebhookSettings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


def _temporal(request: Request) -> TemporalConnector:
    return request.app.state.temporal


SettingsDep = Annotated[Settings, Depends(_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
# The connector, not the client: a route validates its input before it waits for Temporal, so a
# bad request is a 400 even while Temporal is down.
TemporalDep = Annotated[TemporalConnector, Depends(_temporal)]


def webhook_settings(request: Request) -> WebhookSettings:
    """The deployment's webhook settings (URL policy, secret encryption keys); an app may carry
    its own in `app.state.webhook_settings`."""
    settings = getattr(request.app.state, "webhook_settings", None)
    if settings is None:
        settings = request.app.state.settings.webhooks
        request.app.state.webhook_settings = settings
    return settings


def secret_box(request: Request) -> SecretBox:
    settings = webhook_settings(request)
    cached = getattr(request.app.state, "webhook_secret_box", None)
    if cached is None or cached[0] is not settings:
        cached = (settings, SecretBox(settings.secret_encryption_keys()))
        request.app.state.webhook_secret_box = cached
    return cached[1]


WebhookSettingsDep = Annotated[WebhookSettings, Depends(webhook_settings)]
SecretBoxDep = Annotated[SecretBox, Depends(secret_box)]
