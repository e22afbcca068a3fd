"""How a connector writes a thing's properties: what it stores, what it computes, what it refuses.

A write keeps every property it is given or says why not: a property the backend stores is
sent; one its reads compute (a price, a permalink) is ignored, so that properties read from a
thing can be sent back; any other is BAD_USER_INPUT naming it. Merge sends only what is given;
replace also clears every stored property that is not given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.errors import InvalidInputError
from providers.validation import excerpt


@dataclass(frozen=True, slots=True)
class PropertyMap:
    """A connector's properties: thing key -> upstream field for the ones it stores, the
    upstream value that clears a field on replace (a field without one is kept), and the keys
    its reads compute."""

    provider: str
    stored: Mapping[str, str]
    cleared: Mapping[str, Any] = field(default_factory=dict)
    computed: frozenset[str] = frozenset()

    def fields(self, properties: Mapping[str, Any], *, merge: bool = True) -> dict[str, Any]:
        """The upstream fields a write of `properties` sets."""
        refuse_unknown(self.provider, properties, self.stored, self.computed)
        body = {} if merge else dict(self.cleared)
        body.update({self.stored[k]: v for k, v in properties.items() if k in self.stored})
        return body


def refuse_unknown(
    provider: str,
    properties: Mapping[str, Any],
    stored: Iterable[str],
    computed: Iterable[str] = (),
) -> None:
    """`InvalidInputError` for properties the backend neither stores nor computes."""
    unknown = sorted(set(properties) - set(stored) - set(computed))
    if unknown:
        names = ", ".join(f"'{excerpt(k)}'" for k in unknown[:5])
        raise InvalidInputError(
            f"{provider} cannot store the properties {names}; it stores "
            f"{', '.join(sorted(stored)) or 'none'}",
            field="properties",
            provider=provider,
        )
