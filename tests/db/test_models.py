"""db/models.py maps the migrated schema: Alembic's autogenerate comparison between the models and
the session's database (migrated to heads by `settle up`) finds nothing to add, drop or change, so
`alembic revision --autogenerate` never proposes to drop a real table."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from db.models import Base
from db.settings import sqlalchemy_url

# What autogenerate compares when it writes a revision, and more: column types and server defaults.
COMPARE_OPTIONS = {"compare_type": True, "compare_server_default": True}


async def _differences(database_url: str, metadata: MetaData) -> list[Any]:
    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts=COMPARE_OPTIONS), metadata)
            )
    finally:
        await engine.dispose()


def _tables(differences: list[Any], operation: str) -> list[str]:
    """Tables of the table-level differences of one kind (`add_table`, `remove_table`)."""
    return [difference[1].name for difference in differences if isinstance(difference, tuple) and difference[0] == operation]


async def test_every_table_of_the_migrations_is_mapped(stack, db_pool):
    tables = {
        row["table_name"]
        for row in await db_pool.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    }
    assert tables - {"alembic_version"} == set(Base.metadata.tables)


async def test_autogenerate_finds_no_difference_between_models_and_migrations(stack):
    differences = await _differences(stack["database_url"], Base.metadata)
    assert _tables(differences, "remove_table") == [] and _tables(differences, "add_table") == []
    # Columns, types, nullability, defaults, indexes, keys: no drift either.
    assert differences == []


async def test_the_comparison_sees_a_table_the_models_would_drop(stack):
    """The check above could pass by comparing nothing: without one model, autogenerate proposes
    to drop its table (the very thing the models exist to prevent)."""
    partial = MetaData()
    for table in Base.metadata.sorted_tables:
        if table.name != "sweep_requests":
            table.to_metadata(partial)
    differences = await _differences(stack["database_url"], partial)
    assert _tables(differences, "remove_table") == ["sweep_requests"]
