"""Alembic, driven from code: `settle up`, the tests and the bench migrate the same way."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from db.settings import sqlalchemy_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url))
    return config


async def upgrade_to_heads(database_url: str) -> None:
    # Alembic's env runs its own event loop for the async engine: keep it off ours.
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), "heads")
