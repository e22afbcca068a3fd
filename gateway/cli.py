"""`one-gateway`: serve | seed-demo | export-schema | token | configure-provider | rotate-key."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from gateway.auth import authenticator
from gateway.crypto import KeyRing
from gateway.demo import seed_demo
from gateway.settings import Settings, SettingsError, load_settings
from gateway.store import started_store
from providers.configuration import configure, seal
from providers.errors import OneError
from providers.native import NativeStore
from providers.records import Role
from providers.sealing import SealError, sealing_context, unseal_config


async def _issue_token(
    settings: Settings, store: NativeStore, org_slug: str, role: Role, email: str | None
) -> str:
    org = await store.organizations.get_by_slug(org_slug)
    if org is None:
        raise OneError(f"no organization with slug '{org_slug}'")
    if email is not None:
        person = await store.people.get_by_email(org.id, email)
        if person is None:
            raise OneError(f"{email} is not a member of '{org_slug}'")
        membership = (await store.people.memberships(org.id, [person.id]))[person.id]
    else:
        members = [m for m in await store.people.members(org.id) if m.role is role]
        if not members:
            raise OneError(f"'{org_slug}' has no member with role {role.value}")
        membership = members[0]
    return authenticator(settings).issue(
        person_id=membership.person_id, org_id=org.id, role=membership.role
    )


async def _seed(settings: Settings, *, quiet: bool = False) -> None:
    async with started_store(settings) as store:
        seeded = await seed_demo(store)
    if not quiet:
        print(
            f"seeded {', '.join(seeded)}" if seeded else "demo data already present",
            file=sys.stderr,
        )


async def _token(settings: Settings, org: str, role: Role, email: str | None) -> str:
    async with started_store(settings) as store:
        return await _issue_token(settings, store, org, role, email)


async def _configure(
    settings: Settings, org_slug: str, provider: str, routes: list[str], config: str
) -> str:
    try:
        values = json.loads(config)
    except json.JSONDecodeError as exc:
        raise OneError(f"--config is not JSON: {exc.msg}") from None
    if not isinstance(values, dict):
        raise OneError("--config must be a JSON object")
    async with started_store(settings) as store, httpx.AsyncClient() as client:
        org = await store.organizations.get_by_slug(org_slug)
        if org is None:
            raise OneError(f"no organization with slug '{org_slug}'")
        saved = await configure(
            store,
            client,
            KeyRing.from_settings(settings),
            org_id=org.id,
            actor_ref=None,
            provider=provider,
            config=values,
            routes=routes,
        )
    return (
        f"{provider} now owns {', '.join(saved.routes)} in {org_slug} (config {saved.id}, "
        f"connection test {(saved.health or {}).get('response_ms', 0):.0f} ms)"
    )


async def _rotate_key(settings: Settings) -> str:
    """A new current key, and every sealed secret (active or kept for rollback) re-sealed
    under it. Running gateways pick the new key up from the keyring file when they meet it."""
    keyring = KeyRing.from_settings(settings)
    async with started_store(settings) as store:
        configs = await store.provider_configs.every(active_only=False)
        opened = [(c, unseal_config(c, keyring)) for c in configs]  # all open before any change
        new = keyring.rotate()
        for config, values in opened:
            context = sealing_context(config.org_id, config.id)
            await store.provider_configs.replace_config(
                config, seal(config.provider, values, keyring, context)
            )
    return f"key {new} is current; re-sealed {len(opened)} provider configuration(s)"


def _serve(settings: Settings, demo: bool) -> None:
    import uvicorn

    from gateway.app import create_app

    if demo:
        asyncio.run(_seed(settings, quiet=True))
        token = asyncio.run(_token(settings, "acme", Role.ORG_OWNER, None))
        url = f"http://{settings.host}:{settings.port}/graphql"
        print(
            f"\nONE Gateway, demo data on the embedded store.\n"
            f"GraphiQL: {url}\n"
            f"Add this header in GraphiQL's Headers tab (Olivia, org_owner of acme):\n\n"
            f'  {{"Authorization": "Bearer {token}"}}\n\n'
            f"Other roles: .venv/bin/one-gateway token --org acme --role org_user\n",
            flush=True,
        )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="one-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--demo", action="store_true", help="seed demo data if missing and print a token"
    )
    commands.add_parser("seed-demo", help="add the demo organizations if they are missing")
    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.add_argument("--output", type=Path, help="write to this file instead of stdout")
    token = commands.add_parser("token", help="print a development JWT for a member")
    token.add_argument("--org", required=True, help="organization slug, e.g. acme")
    token.add_argument(
        "--role",
        default=Role.ORG_OWNER.value,
        choices=[r.value for r in Role],
        help="pick a member with this role (default org_owner)",
    )
    token.add_argument("--email", help="pick this member instead")
    configure = commands.add_parser(
        "configure-provider",
        help="route thing types of an organization to a provider (takes effect at once)",
    )
    configure.add_argument("--org", required=True, help="organization slug")
    configure.add_argument("--provider", required=True, help="e.g. wordpress")
    configure.add_argument("--routes", required=True, help="thing types, e.g. blog_post,page")
    commands.add_parser(
        "rotate-key", help="seal every provider secret under a new key (keyring in ONE_DATA_DIR)"
    )
    configure.add_argument(
        "--config",
        default="-",
        help="the config as JSON; '-' (default) reads it from stdin, "
        "which keeps credentials out of the process list",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.command == "export-schema":
        from resolvers.schema import schema

        sdl = schema.as_str() + "\n"
        if args.output:
            args.output.write_text(sdl)
        else:
            sys.stdout.write(sdl)
        return 0
    try:
        flags = {"host": getattr(args, "host", None), "port": getattr(args, "port", None)}
        overrides = {k: v for k, v in flags.items() if v is not None}
        settings = load_settings(**overrides)
        if args.command == "serve":
            _serve(settings, args.demo)
        elif args.command == "seed-demo":
            asyncio.run(_seed(settings))
        elif args.command == "configure-provider":
            config = sys.stdin.read() if args.config == "-" else args.config
            routes = [r.strip() for r in args.routes.split(",") if r.strip()]
            print(asyncio.run(_configure(settings, args.org, args.provider, routes, config)))
        elif args.command == "rotate-key":
            print(asyncio.run(_rotate_key(settings)))
        elif args.command == "token":
            print(asyncio.run(_token(settings, args.org, Role(args.role), args.email)))
    except (SettingsError, OneError, SealError) as exc:
        print(f"one-gateway: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
