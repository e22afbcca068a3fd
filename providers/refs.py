"""Global references: `<kind>.<provider>.<local id>`, e.g. `thing.native.4f0c9a...`.

A reference names its provider, so a lookup routes without a query. Only unreserved URL
characters are used, so an id can travel in a path or query string unescaped.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

from providers.errors import InvalidInputError
from providers.records import NATIVE, Kind
from providers.validation import excerpt

_LOCAL_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_MAX_REF_LENGTH = 160


@dataclass(frozen=True, slots=True)
class Ref:
    kind: Kind
    provider: str
    local_id: str
    # The text, made once: a large answer turns thousands of references into strings.
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_text", f"{self.kind.value}.{self.provider}.{self.local_id}")

    def __str__(self) -> str:
        return self._text

    @classmethod
    def parse(cls, value: str, *, expect: Kind | None = None, field: str = "id") -> Ref:
        """Parse and validate a global id, raising `InvalidInputError` when malformed."""
        return _parse(value, expect, field)  # the same references recur: kept (immutable)

    @classmethod
    def _parse(cls, value: str, expect: Kind | None, field: str) -> Ref:
        if len(value) > _MAX_REF_LENGTH:
            raise InvalidInputError(f"'{field}' is not a valid id: too long", field=field)
        parts = value.split(".", 2)
        if len(parts) != 3:
            raise InvalidInputError(
                f"'{field}' is not a valid id: expected <kind>.<provider>.<id>, "
                f"e.g. thing.native.4f0c9a2e",
                field=field,
            )
        kind_name, provider, local_id = parts
        try:
            kind = Kind(kind_name)
        except ValueError:
            raise InvalidInputError(
                f"'{field}' is not a valid id: unknown kind '{excerpt(kind_name)}'", field=field
            ) from None
        if provider not in _provider_names():
            raise InvalidInputError(
                f"'{field}' is not a valid id: unknown provider '{excerpt(provider)}'", field=field
            )
        if kind is not Kind.THING and provider != NATIVE:
            raise InvalidInputError(
                f"'{field}' is not a valid id: only things live in other providers", field=field
            )
        if not _LOCAL_ID.fullmatch(local_id):
            raise InvalidInputError(f"'{field}' is not a valid id: bad characters", field=field)
        if expect is not None and kind is not expect:
            raise InvalidInputError(
                f"'{field}' must be the id of a {expect.name.lower()}, not of a "
                f"{kind.name.lower()}",
                field=field,
            )
        return cls(kind, provider, local_id)


@functools.lru_cache(maxsize=16384)
def _parse(value: str, expect: Kind | None, field: str) -> Ref:
    return Ref._parse(value, expect, field)


def native_ref(kind: Kind, local_id: str) -> str:
    return f"{kind.value}.{NATIVE}.{local_id}"


def _provider_names() -> frozenset[str]:
    # Read from the registry when first needed: the registry sits above this module.
    from providers.registry import provider_names

    return provider_names()


_last_ms = 0
_sequence = 0
_id_lock = threading.Lock()


def new_local_id() -> str:
    """A fresh native id, 32 hex digits: the millisecond, a sequence within it, 64 random bits.

    Ids sort in creation order (ties on a timestamp keep the order things were made in), and
    the random part keeps them unguessable, so a guessed id cannot probe another organization.
    """
    global _last_ms, _sequence
    with _id_lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms, _sequence = now_ms, 0
        else:
            _sequence += 1
            if _sequence > 0xFFFF:  # more than 65536 ids in one millisecond: borrow the next
                _last_ms, _sequence = _last_ms + 1, 0
        return f"{_last_ms:012x}{_sequence:04x}{secrets.token_hex(8)}"
