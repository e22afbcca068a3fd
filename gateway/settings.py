"""Settings from `ONE_*` environment variables, with every default in one place."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?")


class SettingsError(Exception):
    """Settings that cannot start the gateway; the message names each variable at fault."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONE_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".one")
    mongodb_uri: SecretStr | None = None
    jwt_secret: SecretStr | None = None
    jwks_url: str | None = None  # RS256/ES256 tokens from an identity provider
    jwks_cooldown_seconds: float = Field(default=30.0, ge=0)  # between refetches on unknown kid
    jwt_issuer: str = "one-gateway"
    jwt_audience: str = "one-gateway"
    token_ttl_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    encryption_key: SecretStr | None = None
    health_check_seconds: float = Field(default=300.0, ge=0)  # 0: only on demand
    redis_url: str | None = None
    # Real-time (gateway/realtime.py, gateway/live_events.py, gateway/sse.py).
    subscriptions_per_connection: int = Field(default=20, ge=1)
    subscriptions_per_organization: int = Field(default=2000, ge=1)  # in each process
    subscriber_queue: int = Field(default=256, ge=1)  # events waiting for a slow subscriber
    event_retention: int = Field(default=10_000, ge=100)  # events per org a client may resume
    ws_init_timeout_seconds: float = Field(default=10.0, gt=0)  # until connection_init
    heartbeat_seconds: float = Field(default=15.0, gt=0)  # pings on WebSockets and SSE
    subscription_recheck_seconds: float = Field(default=5.0, gt=0)  # a subscriber's access
    # How often the relay looks for events another process committed but did not publish.
    relay_sweep_seconds: float = Field(default=2.0, gt=0)
    # Nested selections loaded level by level in bulk and completed without graphql-core's
    # per-field steps (resolvers/planning.py, resolvers/fast_fields.py); off only to compare.
    planned_execution: bool = True
    # Knowledge from content (gateway/indexer.py): a changed thing is chunked (and embedded)
    # this many seconds after its last change; 0: only `one-gateway reindex`.
    knowledge_index_seconds: float = Field(default=1.0, ge=0)
    # Seconds each backend has to answer a federated `search`; a later one is left out.
    search_deadline_seconds: float = Field(default=3.0, gt=0, le=60)
    # Migrations (gateway/migrations.py): how often the runner looks for copies to make and
    # writes to replay; how often shadow-read tallies are added to a migration's row.
    migration_poll_seconds: float = Field(default=1.0, gt=0, le=300)
    migration_flush_seconds: float = Field(default=2.0, ge=0, le=300)
    # Change detection where the backend cannot push (gateway/wordpress_changes.py); 0: off.
    wordpress_poll_seconds: float = Field(default=30.0, ge=0)
    # At shutdown, how long open streams (SSE, WebSockets) may take before they are cut.
    shutdown_grace_seconds: int = Field(default=5, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Processes `serve` runs (uvicorn workers); above 1 needs ONE_REDIS_URL (see README).
    workers: int = Field(default=1, ge=1, le=64)
    debug: bool = False  # answers say whether the response cache served them

    # The response cache (gateway/response_cache.py; README "Response cache").
    response_cache: bool = False
    response_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)  # in each process
    response_cache_seconds: float = Field(default=300.0, ge=0)  # the longest any answer is kept
    # The longest an answer that read an upstream is kept (its data changes without events);
    # a provider not named here is never kept.
    response_cache_upstream_seconds: dict[str, float] = Field(
        default_factory=lambda: {"wordpress": 30.0, "shopify": 60.0, "notion": 60.0}
    )

    # Limits and protection (README: "Limits and protection").
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)  # each header value, and all
    max_document_chars: int = Field(default=100_000, ge=100)
    max_tokens: int = Field(default=15_000, ge=10)
    max_depth: int = Field(default=12, ge=1)
    max_aliases: int = Field(default=50, ge=0)
    max_selections: int = Field(default=100, ge=10)  # in one selection set
    query_cost_budgets: dict[str, int] = Field(
        default_factory=lambda: {
            "anonymous": 1_000,
            "customer": 1_000,
            "org_user": 5_000,
            "org_owner": 10_000,
            "platform_owner": 20_000,
        }
    )
    # Requests per second (and bursts) per person or API key, and per address without one.
    actor_rate: float = Field(default=20.0, gt=0)
    actor_burst: int = Field(default=60, ge=1)
    anonymous_rate: float = Field(default=5.0, gt=0)
    anonymous_burst: int = Field(default=20, ge=1)
    # The share of the organization's daily API calls one actor (other than an owner) may use.
    actor_daily_share: float = Field(default=0.25, gt=0, le=1)
    persisted_queries_chars: int = Field(default=4 * 1024 * 1024, ge=0)
    csrf_prevention: bool = True
    cors_origins: list[str] = Field(default_factory=list)
    log_format: Literal["text", "json"] = "text"  # json: one object a line, with trace ids
    metrics_token: SecretStr | None = None  # /metrics needs 'Authorization: Bearer <it>'

    # Upstreams (README: "Resilience: timeouts, deadline, retries, breakers, bulkheads, SSRF").
    upstream_deadline_seconds: float = Field(default=10.0, gt=0, le=300)  # per GraphQL request
    upstream_attempts: int = Field(default=3, ge=1, le=10)  # tries per upstream call
    upstream_backoff_seconds: float = Field(default=0.1, ge=0)  # first backoff; doubles ...
    upstream_backoff_max_seconds: float = Field(default=2.0, ge=0)  # ... up to this
    upstream_concurrency: int = Field(default=20, ge=1)  # in flight per (org, provider)
    upstream_max_connections: int = Field(default=1000, ge=1)  # the shared pool, all orgs
    upstream_breaker_failures: int = Field(default=5, ge=1)  # in a row: the circuit opens
    upstream_breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)  # ... or this share
    upstream_breaker_window: int = Field(default=20, ge=1)  # ... of the last this many calls
    upstream_breaker_min_calls: int = Field(default=10, ge=1)  # ... once there are this many
    upstream_breaker_cooldown_seconds: float = Field(default=30.0, gt=0)  # open -> half-open
    # Hosts or CIDRs upstreams may reach although private or loopback (comma-separated or a
    # JSON list). Loopback is allowed without it in development and test.
    upstream_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("encryption_key")
    @classmethod
    def _key_is_32_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from gateway.crypto import parse_key

            parse_key(value.get_secret_value())  # ValueError names what is wrong, not the key
        return value

    @field_validator("upstream_allowlist", mode="before")
    @classmethod
    def _comma_separated_or_json(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("upstream_allowlist")
    @classmethod
    def _hosts_or_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip("[]"), strict=False)
            except ValueError:
                if not _HOST.fullmatch(entry):
                    raise ValueError(f"'{entry}' is neither a host name nor a CIDR") from None
        return value

    @model_validator(mode="after")
    def _workers_share_through_redis(self) -> Settings:
        if self.workers > 1 and not self.redis_url:
            raise ValueError(
                "ONE_WORKERS above 1 needs ONE_REDIS_URL: the processes share subscriptions' "
                "events, rate limits and daily calls only through Redis"
            )
        return self

    @model_validator(mode="after")
    def _production_needs_explicit_secrets(self) -> Settings:
        if self.env == "production":
            if self.jwt_secret is None:
                raise ValueError("ONE_JWT_SECRET must be set when ONE_ENV=production")
            if len(self.jwt_secret.get_secret_value()) < 32:
                raise ValueError("ONE_JWT_SECRET must be at least 32 characters")
        return self

    def jwt_secret_value(self) -> str:
        """The JWT secret: the configured one, or one generated once and kept in the data dir."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = self.data_dir / "jwt-secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Written to a private temporary file, then linked into place: of two processes
            # starting at once, one wins and both read the same secret.
            temporary = path.with_name(f".jwt-secret.{os.getpid()}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
            try:
                os.link(temporary, path)  # fails if another process got there first
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        return path.read_text().strip()


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and `overrides`), or a `SettingsError` that says what
    to fix, one line per variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            name = f"ONE_{field.upper()}" if field else "settings"
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{name}: {message}")  # never the value: it may be a secret
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
