"""The HTTP front. It authenticates, validates, starts/signals/queries workflows and serves read
models; it never posts to the ledger and never signs a chain transaction."""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

app = FastAPI(title="Settle", version="0.1.0", description="Durable settlement engine for crypto payments.")


@app.get("/healthz", tags=["ops"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/metrics", tags=["ops"], include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
