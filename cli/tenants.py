"""`settle tenants create --kind merchant|program --name NAME [--fee-bps N] [--json]`

Creates a tenant and its first secret key in the database of the running stack (or the one
`SETTLE_DATABASE_URL` names), through the same function `POST /v1/tenants` uses, audited as done
by the CLI's user. Prints the tenant id and the secret key: shown once, store it now.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import secrets

from cli.processes import StackError
from domain.tenants import (
    BASE62_ALPHABET,
    FEE_BPS_MAX,
    ID_PREFIX_REQUEST,
    ID_RANDOM_LENGTH,
    TENANT_NAME_LENGTH_MAX,
    ActorType,
    TenantKind,
    TenantRuleError,
    check_text,
    key_mode_for_env,
    validate_fee_bps,
)


def add_tenants_parser(commands: argparse._SubParsersAction) -> None:
    tenants = commands.add_parser("tenants", help="manage tenants (merchants and programs)")
    actions = tenants.add_subparsers(dest="tenants_command", required=True)
    create = actions.add_parser("create", help="create a tenant and print its first secret API key")
    create.add_argument("--kind", required=True, choices=[kind.value for kind in TenantKind])
    create.add_argument("--name", required=True)
    create.add_argument("--fee-bps", type=int, default=0, help=f"platform fee in basis points, 0 to {FEE_BPS_MAX}")
    create.add_argument("--json", action="store_true", help="print one JSON object (the same as POST /v1/tenants answers)")


def database_url() -> str:
    """SETTLE_DATABASE_URL if set, else the running local stack's database."""
    explicit = os.environ.get("SETTLE_DATABASE_URL")
    if explicit:
        return explicit
    from cli.stack import Stack

    url = Stack().describe().get("database_url")
    if not url:
        raise StackError("no running stack and no SETTLE_DATABASE_URL: run `settle up` first")
    return url


async def create_tenant(*, kind: TenantKind, name: str, fee_bps: int, url: str) -> dict:
    from api.schemas import ApiKeyCreated, TenantCreated, TenantRead
    from db.audit import Actor
    from db.pool import create_pool
    from db.settings import Settings
    from db.tenants import create_tenant_with_first_key

    request_id = f"{ID_PREFIX_REQUEST}_" + "".join(secrets.choice(BASE62_ALPHABET) for _ in range(ID_RANDOM_LENGTH))
    actor = Actor(type=ActorType.CLI, id=f"cli:{getpass.getuser()}", request_id=request_id)
    pool = await create_pool(url, size_min=1, size_max=1)
    try:
        tenant, created = await create_tenant_with_first_key(
            pool, kind=kind, name=name, fee_bps=fee_bps, mode=key_mode_for_env(Settings().env), actor=actor
        )
    finally:
        await pool.close()
    return TenantCreated(**TenantRead.of(tenant).model_dump(), api_key=ApiKeyCreated.of_created(created)).model_dump(mode="json")


def run_tenants(args: argparse.Namespace) -> int:
    assert args.tenants_command == "create"
    try:
        name = check_text(args.name, param="--name", length_max=TENANT_NAME_LENGTH_MAX)
        fee_bps = validate_fee_bps(args.fee_bps)
    except TenantRuleError as error:
        raise StackError(error.message.replace("fee_bps", "--fee-bps")) from error
    import asyncpg

    try:
        created = asyncio.run(create_tenant(kind=TenantKind(args.kind), name=name, fee_bps=fee_bps, url=database_url()))
    except (OSError, asyncpg.PostgresError) as error:
        raise StackError(f"could not create the tenant in the database: {error}") from error
    if args.json:
        print(json.dumps(created, indent=2))
    else:
        print(f"tenant   {created['id']}  ({created['kind']} {created['name']!r}, ledger {created['ledger_id']})")
        print(f"api key  {created['api_key']['secret']}")
        print("         shown once: store it now; Settle keeps only its hash")
    return 0
