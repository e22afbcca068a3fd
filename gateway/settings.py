"""Settings from `ONE_*` environment variables, with every default in one place."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("encryption_key")
    @classmethod
    def _key_is_32_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from gateway.crypto import parse_key

            parse_key(value.get_secret_value())  # ValueError names what is wrong, not the key
        return value

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
