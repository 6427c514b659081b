"""The `settle` command: `up [--json]`, `down`, `status`, `demo`, `tenants create`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from cli.processes import StackError
from cli.tenants import add_tenants_parser


def _print_description(description: dict) -> None:
    print("Settle local stack is up:")
    print(f"  API             {description['api_url']}  (docs: {description['api_url']}/docs)")
    print(f"  Temporal        {description['temporal_address']}  namespace {description['temporal_namespace']}")
    print(f"  Temporal Web UI {description['temporal_ui_url']}")
    print(f"  anvil           {description['rpc_url']}  chain id {description['chain_id']}")
    print(f"  PostgreSQL      {description['database_url']}")
    for name, url in description["metrics_urls"].items():
        print(f"  metrics         {name}: {url}")
    for name, address in description["contracts"].items():
        print(f"  contract        {name}: {address}")
    for role, account in description["accounts"].items():
        print(f"  account         {role}: {account['address']}")
    print(f"  state           {description['state_dir']}  (`settle up --json` prints keys too; dev only)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="settle", description="Settle's local stack and demo.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start PostgreSQL, Temporal, anvil, a worker and the API (reuses what runs)")
    up.add_argument("--json", action="store_true", help="print one JSON object describing the stack")
    commands.add_parser("down", help="stop everything `settle up` started, by pid")
    status = commands.add_parser("status", help="describe the running stack")
    status.add_argument("--json", action="store_true")
    commands.add_parser("demo", help="tell the story against the running stack")
    add_tenants_parser(commands)
    args = parser.parse_args(argv)

    from cli.stack import Stack

    stack = Stack()
    try:
        if args.command == "up":
            description = stack.up()
            if args.json:
                print(json.dumps(description, indent=2))
            else:
                _print_description(description)
        elif args.command == "down":
            stopped = stack.down()
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        elif args.command == "status":
            description = stack.describe()
            print(json.dumps(description, indent=2) if args.json else json.dumps(description["pids"]))
        elif args.command == "demo":
            from cli.demo import run_demo

            asyncio.run(run_demo(stack.describe()))
        elif args.command == "tenants":
            from cli.tenants import run_tenants

            return run_tenants(args)
    except StackError as error:
        print(f"settle {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
