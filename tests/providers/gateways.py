"""A gateway with its upstream settings chosen by the test (short deadlines, small breakers),
the demo data, and providers routed to whatever upstream a test runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.demo import seed_demo
from gateway.settings import load_settings
from providers.registry import validate_config
from tests.conftest import JWT_SECRET, Api

ROUTES = {
    "wordpress": ["blog_post", "page"],
    "shopify": ["product", "order"],
    "notion": ["document"],
}
THING_TYPE = {"wordpress": "blog_post", "shopify": "product", "notion": "document"}


@contextmanager
def gateway_api(data_dir: Path, **settings: Any) -> Iterator[Api]:
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": data_dir,
        "jwt_secret": JWT_SECRET,
        "actor_rate": 1000,
        "actor_burst": 1000,
        **settings,
    }
    with TestClient(create_app(load_settings(**values))) as client:
        api = Api(client, {})
        api.run(seed_demo, api.store)
        yield api


def route(api: Api, provider: str, config: dict[str, Any], org: str = "acme") -> None:
    """Route the organization's types of `provider` to it, saved as `configureProvider` would
    save it, but without the connection test (the upstream may be down on purpose)."""

    async def save() -> None:
        found = await api.store.organizations.get_by_slug(org)
        assert found is not None
        await api.store.provider_configs.save(
            found.id,
            actor_ref=None,
            provider=provider,
            config=validate_config(provider, config, ROUTES[provider]),
            routes=ROUTES[provider],
        )

    api.run(save)


def native_and(thing_type: str) -> str:
    """A query of acme's native courses next to things of `thing_type`."""
    return f"""{{ courses: things(type: "course") {{ totalCount }}
      items: things(type: "{thing_type}", first: 5) {{ totalCount edges {{ node {{ id }} }} }} }}"""
