"""Moved to `db.webhook_settings` (the API reads it too, and never imports activities/)."""

from db.webhook_settings import *  # noqa: F401,F403
from db.webhook_settings import DEV_SECRET_ENCRYPTION_KEY, ENVIRONMENTS_LOCAL, WebhookSettings, get_webhook_settings  # noqa: F401
