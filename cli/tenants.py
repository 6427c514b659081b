"""`settle tenants create --kind merchant|program --name NAME [--fee-bps N] [--json]`
`settle tenants update TENANT_ID [--fee-bps N] [--confirmation-policy JSON] [--json]`

`create` makes a tenant and its first secret key in the database of the running stack (or the one
`SETTLE_DATABASE_URL` names), through the same function `POST /v1/tenants` uses, audited as done
by the CLI's user. Prints the tenant id and the secret key: shown once, store it now.

`update` changes the platform's settings of a tenant (its fee, its confirmation policy), which its
own keys cannot change, through the same function `PATCH /v1/tenants/{id}` uses, audited as done
by the CLI's user.
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
    OBJECT_ID_LENGTH_MAX,
    OBJECT_ID_PATTERN,
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
    update = actions.add_parser("update", help="change a tenant's platform settings: fee, confirmation policy (audited)")
    update.add_argument("tenant_id", help="the tenant, ten_...")
    update.add_argument("--fee-bps", type=int, help=f"platform fee in basis points, 0 to {FEE_BPS_MAX}")
    update.add_argument(
        "--confirmation-policy",
        help='confirmations by amount, as JSON: \'{"tiers": [{"amount_base_units_min": 0, "confirmations_min": 3}]}\'; null removes the override',
    )
    update.add_argument("--json", action="store_true", help="print the tenant as one JSON object (as GET /v1/tenants/{id} answers)")


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


def _cli_actor():  # -> db.audit.Actor, imported late: the CLI starts without the database layer
    from db.audit import Actor

    request_id = f"{ID_PREFIX_REQUEST}_" + "".join(secrets.choice(BASE62_ALPHABET) for _ in range(ID_RANDOM_LENGTH))
    return Actor(type=ActorType.CLI, id=f"cli:{getpass.getuser()}", request_id=request_id)


async def create_tenant(*, kind: TenantKind, name: str, fee_bps: int, url: str) -> dict:
    from api.schemas import ApiKeyCreated, TenantCreated, TenantRead
    from db.pool import create_pool
    from db.settings import Settings
    from db.tenants import create_tenant_with_first_key

    actor = _cli_actor()
    pool = await create_pool(url, size_min=1, size_max=1)
    try:
        tenant, created = await create_tenant_with_first_key(
            pool, kind=kind, name=name, fee_bps=fee_bps, mode=key_mode_for_env(Settings().env), actor=actor
        )
    finally:
        await pool.close()
    return TenantCreated(**TenantRead.of(tenant).model_dump(), api_key=ApiKeyCreated.of_created(created)).model_dump(mode="json")


async def update_tenant(*, tenant_id: str, changes: dict, url: str) -> dict:
    from api.schemas import TenantRead
    from db.pool import create_pool
    from db.tenants import update_tenant_settings

    pool = await create_pool(url, size_min=1, size_max=1)
    try:
        tenant = await update_tenant_settings(pool, tenant_id=tenant_id, changes=changes, actor=_cli_actor())
    finally:
        await pool.close()
    return TenantRead.of(tenant).model_dump(mode="json")


def platform_changes(args: argparse.Namespace) -> dict:
    """The settings `settle tenants update` was asked to change, validated as the admin route
    validates them."""
    import re

    from pydantic import ValidationError

    from api.schemas import TenantPlatformUpdate

    if len(args.tenant_id) > OBJECT_ID_LENGTH_MAX or not re.match(OBJECT_ID_PATTERN, args.tenant_id):
        raise StackError(f"{args.tenant_id!r} is not a tenant id (ten_...)")
    fields: dict = {}
    if args.fee_bps is not None:
        fields["fee_bps"] = args.fee_bps
    if args.confirmation_policy is not None:
        try:
            fields["confirmation_policy"] = json.loads(args.confirmation_policy)
        except ValueError as error:
            raise StackError(f"--confirmation-policy is not JSON: {error}") from None
    if not fields:
        raise StackError("nothing to change: give --fee-bps and/or --confirmation-policy")
    try:
        return TenantPlatformUpdate.model_validate(fields).changes()
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        option = "--" + where.split(".", 1)[0].replace("_", "-")
        message = first["msg"].removeprefix("Value error, ")
        raise StackError(f"{option}: {where}: {message}") from None


def run_tenants(args: argparse.Namespace) -> int:
    if args.tenants_command == "update":
        return _run_update(args)
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


def _run_update(args: argparse.Namespace) -> int:
    changes = platform_changes(args)
    import asyncpg

    from db.tenants import TenantNotFound

    try:
        tenant = asyncio.run(update_tenant(tenant_id=args.tenant_id, changes=changes, url=database_url()))
    except TenantNotFound as error:
        raise StackError(str(error)) from None
    except (OSError, asyncpg.PostgresError) as error:
        raise StackError(f"could not update the tenant in the database: {error}") from error
    if args.json:
        print(json.dumps(tenant, indent=2))
    else:
        policy = json.dumps(tenant["confirmation_policy"]) if tenant["confirmation_policy"] else "the platform's"
        print(f"tenant   {tenant['id']}  ({tenant['kind']} {tenant['name']!r})")
        print(f"fee      {tenant['fee_bps']} bps")
        print(f"confirmations  {policy}")
    return 0
