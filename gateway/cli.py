"""`one-gateway`: serve | seed-demo | export-schema | token | configure-provider | rotate-key |
trusted-documents | reindex | migrate."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from tqdm import tqdm

from gateway.auth import authenticator
from gateway.crypto import KeyRing
from gateway.demo import seed_demo
from gateway.indexer import Indexer, Reindexed
from gateway.migrations import lease_owner
from gateway.migrations import step as migration_step
from gateway.requests import RequestIdFilter
from gateway.settings import Settings, SettingsError, load_settings
from gateway.store import started_store
from gateway.tracing import JsonFormatter
from gateway.upstreams import upstream_client, upstream_policy
from providers import migrations as migration_steps
from providers.configuration import configure, seal
from providers.errors import InvalidInputError, OneError
from providers.native import NativeStore
from providers.native.migrations import Migration, MigrationState
from providers.native.trusted_documents import MAX_DOCUMENTS, document_hash
from providers.records import Organization, Role, SafelistMode
from providers.registry import ProviderPool
from providers.sealing import SealError, sealing_context, unseal_config
from resolvers.router import Router


async def _organization(store: NativeStore, slug: str) -> Organization:
    org = await store.organizations.get_by_slug(slug)
    if org is None:
        path = getattr(store.engine, "path", None)
        where = (
            f"the store at {path} (ONE_DATA_DIR or --data-dir)"
            if path is not None
            else "the MongoDB of ONE_MONGODB_URI"
        )
        raise OneError(
            f"no organization with slug '{slug}' in {where}; is it the store the gateway "
            f"uses? (`one-gateway seed-demo` adds the demo's acme and globex)"
        )
    return org


async def _issue_token(
    settings: Settings, store: NativeStore, org_slug: str, role: Role, email: str | None
) -> str:
    org = await _organization(store, org_slug)
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
    async with _indexing(settings) as (store, indexer):
        seeded = await seed_demo(store)
        for owner in seeded.values():
            await indexer.reindex(owner.org.id)  # their text as knowledge, from the start
    if not quiet:
        print(
            f"seeded {', '.join(seeded)}" if seeded else "demo data already present",
            file=sys.stderr,
        )


async def _token(settings: Settings, org: str, role: Role, email: str | None) -> str:
    async with started_store(settings) as store:
        return await _issue_token(settings, store, org, role, email)


async def _configure(
    settings: Settings,
    org_slug: str,
    provider: str,
    routes: list[str],
    config: str,
    source: str = "--config",
) -> str:
    """`source` names where the config came from in errors: `--config` or stdin."""
    try:
        values = json.loads(config)
    except json.JSONDecodeError as exc:
        raise OneError(f"the config on {source} is not JSON: {exc.msg}") from None
    if not isinstance(values, dict):
        raise OneError(f"the config on {source} must be a JSON object")
    # The gateway's own client: the connection test obeys the same address guard (SSRF).
    async with started_store(settings) as store, upstream_client(settings) as client:
        org = await _organization(store, org_slug)
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


_MANIFEST_FORMAT = "apollo-persisted-query-manifest"


def _read_documents(paths: Sequence[Path]) -> list[tuple[str, str | None, str]]:
    """(where it came from, name, text) of each document: a file holds one document, or is
    an Apollo persisted query manifest (JSON) holding many."""
    documents: list[tuple[str, str | None, str]] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise OneError(f"cannot read {path}: {exc}") from None
        if path.suffix != ".json":
            documents.append((str(path), path.stem, text))
            continue
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OneError(f"{path} is not JSON: {exc.msg}") from None
        header = (
            (manifest.get("format"), manifest.get("version")) if isinstance(manifest, dict) else ()
        )
        if header != (_MANIFEST_FORMAT, 1):
            raise OneError(f"{path} is not a persisted query manifest ({_MANIFEST_FORMAT}, 1)")
        for index, operation in enumerate(manifest.get("operations") or []):
            body = operation.get("body") if isinstance(operation, dict) else None
            if not isinstance(body, str):
                raise OneError(f"{path}: operation {index} has no body")
            name = operation.get("name")
            if operation.get("id") not in (None, document_hash(body)):
                # Clients send the manifest's id as the hash: a custom id will never match.
                print(
                    f"warning: {path}: the id of operation {index} is not the SHA-256 of its "
                    f"body; clients must send {document_hash(body)}",
                    file=sys.stderr,
                )
            documents.append(
                (f"{path}: operation {index}", name if isinstance(name, str) else None, body)
            )
    return documents


async def _trust_documents(
    settings: Settings,
    org_slug: str,
    paths: Sequence[Path],
    api_key_id: str | None,
    mode: SafelistMode | None,
) -> list[str]:
    documents = _read_documents(paths)
    lines = []
    async with started_store(settings) as store:
        org = await _organization(store, org_slug)
        for start in range(0, len(documents), MAX_DOCUMENTS):
            batch = documents[start : start + MAX_DOCUMENTS]
            try:
                registered = await store.trusted_documents.register(
                    org.id,
                    actor_ref=None,
                    documents=[(name, text) for _, name, text in batch],
                    api_key_id=api_key_id,
                )
            except InvalidInputError as exc:
                index = exc.extensions.get("index")
                if not isinstance(index, int):
                    raise
                raise OneError(f"{batch[index][0]}: {exc.message}") from None
            lines += [f"{d.sha256}  {d.name or ''}".rstrip() for d in registered]
        if mode is not None:
            await store.trusted_documents.set_safelist_mode(org.id, actor_ref=None, mode=mode)
            lines.append(f"safelist mode of {org_slug}: {mode.value}")
    return lines


@asynccontextmanager
async def _indexing(settings: Settings) -> AsyncIterator[tuple[NativeStore, Indexer]]:
    """The store, and an indexer that reaches every provider as the gateway does."""
    async with started_store(settings) as store, upstream_client(settings) as client:
        pool = ProviderPool(
            client, KeyRing.from_settings(settings), policy=upstream_policy(settings)
        )
        yield store, Indexer(store, pool, delay=None)


async def _reindex(settings: Settings, org_slug: str) -> Reindexed:
    """Every thing of the organization indexed again, with a progress bar on stderr."""
    async with _indexing(settings) as (store, indexer):
        org = await _organization(store, org_slug)
        with tqdm(desc=f"reindexing {org_slug}", unit=" things", file=sys.stderr) as bar:

            def progress(now: Reindexed) -> None:
                bar.total = now.total
                bar.set_postfix(chunks=now.chunks, embedded=now.embedded, refresh=False)
                bar.update(now.things - bar.n)

            return await indexer.reindex(org.id, progress=progress)


async def _migrate(
    settings: Settings, org_slug: str, type: str, to: str, dry_run: bool
) -> Migration:
    """Start (or carry on, after a crash or a stop) the migration of `type` to `to`, copying
    in this process with a progress bar on stderr; it is left in shadow for the gateway's
    owners to roll out (`setMigrationRollout`) and promote."""
    async with started_store(settings) as store, upstream_client(settings) as client:
        org = await _organization(store, org_slug)
        pool = ProviderPool(
            client, KeyRing.from_settings(settings), policy=upstream_policy(settings)
        )
        found = [
            m
            for m in await store.migrations.live(org.id)
            if m.type == type and m.target == to and m.state is MigrationState.COPYING
        ]
        migration = (
            found[0]
            if found and not dry_run
            else await migration_steps.start(
                store,
                Router(store, pool, org.id),
                org_id=org.id,
                actor_ref=None,
                type=type,
                to=to,
                dry_run=dry_run,
            )
        )
        verb = "checking" if dry_run else "resuming" if found else "copying"
        with tqdm(
            desc=f"{verb} {type} {migration.source} -> {to}", unit=" things", file=sys.stderr
        ) as bar:

            def progress(now: Migration) -> None:
                done = sum(
                    int(now.progress.get(k, 0))
                    for k in ("copied", "updated", "unchanged", "failed", "would_copy")
                )
                bar.total = now.progress.get("total")
                bar.update(done - bar.n)

            progress(migration)
            owner = f"cli:{lease_owner()}"
            done = await migration_step(store, pool, migration, owner=owner, on_progress=progress)
            if done is migration and not dry_run:
                raise OneError(
                    f"migration {migration.id} is being copied by another process "
                    f"({migration.lease_owner or 'a gateway'}); try again later"
                )
        return done


async def _prepare_store(settings: Settings) -> None:
    async with started_store(settings):
        pass  # the schema migrated (or indexes made) once, not by every worker at once


def _serve(settings: Settings, demo: bool) -> None:
    import uvicorn

    from gateway.app import create_app
    from gateway.graphiql import graphiql_link

    if demo:
        asyncio.run(_seed(settings, quiet=True))
        token = asyncio.run(_token(settings, "acme", Role.ORG_OWNER, None))
        url = f"http://{settings.host}:{settings.port}/graphql"
        engine = (
            "MongoDB (ONE_MONGODB_URI)"
            if settings.mongodb_uri
            else f"the embedded SQLite store in {settings.data_dir}"
        )
        print(
            f"\nONE Gateway, demo data on {engine}.\n"
            f"GraphiQL: {graphiql_link(url, token)}\n"
            f"Add this header in GraphiQL's Headers tab (Olivia, org_owner of acme):\n\n"
            f'  {{"Authorization": "Bearer {token}"}}\n\n'
            f"Other roles: .venv/bin/one-gateway token --org acme --role org_user\n",
            flush=True,
        )
    if settings.workers == 1:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="info",
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
        return
    # Each worker builds its app from the environment: pass the flags on through it, and make
    # the generated secrets here, once, before the workers would race to make them.
    os.environ.update(
        ONE_HOST=settings.host, ONE_PORT=str(settings.port), ONE_WORKERS=str(settings.workers)
    )
    settings.jwt_secret_value()
    KeyRing.from_settings(settings)
    asyncio.run(_prepare_store(settings))
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="one-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="processes to run (above 1: ONE_REDIS_URL)")
    serve.add_argument(
        "--demo", action="store_true", help="seed demo data if missing and print a token"
    )
    commands.add_parser("seed-demo", help="add the demo organizations if they are missing")
    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.add_argument("--output", type=Path, help="write to this file instead of stdout")
    export.add_argument(
        "--federation",
        action="store_true",
        help="the Apollo Federation v2 subgraph SDL (what `_service { sdl }` answers), for "
        "composing into a supergraph",
    )
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
    trust = commands.add_parser(
        "trusted-documents",
        help="trust GraphQL documents in an organization, and set its safelist mode",
    )
    trust.add_argument("--org", required=True, help="organization slug")
    trust.add_argument("--api-key-id", help="trust the documents for this API key only")
    trust.add_argument(
        "--mode",
        choices=[m.value for m in SafelistMode],
        help="which requests may run only trusted documents (default: leave it as it is)",
    )
    trust.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="a .graphql file of one document, or an Apollo persisted query manifest (.json)",
    )
    reindex = commands.add_parser(
        "reindex",
        help="make an organization's knowledge chunks (and embeddings) from every thing's text",
    )
    reindex.add_argument("--org", required=True, help="organization slug")
    reindex.add_argument("--data-dir", type=Path, help="the store's directory (ONE_DATA_DIR)")
    migrate = commands.add_parser(
        "migrate",
        help="copy a thing type's things to another backend (resumable); then roll it out "
        "and promote it over GraphQL",
    )
    migrate.add_argument("--org", required=True, help="organization slug")
    migrate.add_argument("--type", required=True, help="thing type, e.g. blog_post")
    migrate.add_argument(
        "--to", required=True, help="the backend: native, or a configured provider"
    )
    migrate.add_argument(
        "--dry-run", action="store_true", help="count and check what would be copied"
    )
    migrate.add_argument("--data-dir", type=Path, help="the store's directory (ONE_DATA_DIR)")
    configure.add_argument(
        "--config",
        default="-",
        help="the config as JSON; '-' (default) reads it from stdin, "
        "which keeps credentials out of the process list",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s [%(request_id)s]: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
        if os.environ.get("ONE_LOG_FORMAT") == "json":  # read here: logs start before settings
            handler.setFormatter(JsonFormatter())

    if args.command == "export-schema":
        from resolvers.schema import schema

        sdl = (schema.subgraph_sdl() if args.federation else schema.as_str()) + "\n"
        if args.output:
            args.output.write_text(sdl)
        else:
            sys.stdout.write(sdl)
        return 0
    try:
        flags = {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "workers": getattr(args, "workers", None),
            "data_dir": getattr(args, "data_dir", None),
        }
        overrides = {k: v for k, v in flags.items() if v is not None}
        settings = load_settings(**overrides)
        if args.command == "serve":
            _serve(settings, args.demo)
        elif args.command == "seed-demo":
            asyncio.run(_seed(settings))
        elif args.command == "configure-provider":
            source = "stdin" if args.config == "-" else "--config"
            if args.config == "-" and sys.stdin.isatty():
                print(
                    f"one-gateway: waiting for the {args.provider} config as JSON on stdin "
                    f'(end it with Ctrl-D), e.g. {{"base_url": "https://..."}}',
                    file=sys.stderr,
                    flush=True,
                )
            config = sys.stdin.read() if args.config == "-" else args.config
            routes = [r.strip() for r in args.routes.split(",") if r.strip()]
            print(
                asyncio.run(_configure(settings, args.org, args.provider, routes, config, source))
            )
        elif args.command == "trusted-documents":
            if not args.files and args.mode is None:
                parser.error("trusted-documents: give FILEs to trust, or --mode, or both")
            key = args.api_key_id.removeprefix("apikey.native.") if args.api_key_id else None
            mode = SafelistMode(args.mode) if args.mode else None
            lines = asyncio.run(_trust_documents(settings, args.org, args.files, key, mode))
            print("\n".join(lines))
        elif args.command == "reindex":
            done = asyncio.run(_reindex(settings, args.org))
            print(
                f"reindexed {done.things} things of {args.org}: {done.chunks} chunks added, "
                f"{done.retired} retired, {done.embedded} embedded"
            )
            if done.failed:
                print(f"one-gateway: {done.failed} failed; see the log", file=sys.stderr)
                return 1
        elif args.command == "migrate":
            migrated = asyncio.run(_migrate(settings, args.org, args.type, args.to, args.dry_run))
            counts = ", ".join(f"{v} {k}" for k, v in sorted(migrated.progress.items()))
            print(
                f"migration {migrated.id} of {migrated.type} to {migrated.target}: "
                f"{migrated.state.value}; {counts}"
            )
            for failure in migrated.failures:
                print(f"  not copied: {failure['id']} {failure['message']}", file=sys.stderr)
            if migrated.failures:
                return 1
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
