"""Staying inside Shopify's cost-based rate limit.

Shopify charges each query a calculated cost (scalars and enums 0, objects 1, a connection 2 +
`first` x its node, `nodes(ids:)` len(ids) x its node, a mutation 10) from a leaky bucket
whose size and restore rate every response reports in `extensions.cost.throttleStatus`.
`estimate_cost` applies those rules to our own documents (it needs no schema: a field with a
`first` argument is a connection, one with a selection set an object), and `CostBucket` waits
until the bucket should hold a query's cost before it is sent, so a burst is paced instead of
throttled.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    value_from_ast_untyped,
)

MAX_QUERY_COST = 1000
MUTATION_COST = 10


def estimate_cost(document: DocumentNode, variables: dict[str, Any]) -> int:
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    if operation.operation.value == "mutation":
        return MUTATION_COST * len(operation.selection_set.selections)
    return _children(operation.selection_set, variables)


def _children(selection_set: SelectionSetNode | None, variables: dict[str, Any]) -> int:
    if selection_set is None:
        return 0
    total, fragments = 0, [0]
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            total += _field(selection, variables)
        elif isinstance(selection, InlineFragmentNode):
            fragments.append(_children(selection.selection_set, variables))
    return total + max(fragments)  # an abstract type costs its most expensive selection


def _field(node: FieldNode, variables: dict[str, Any]) -> int:
    if node.selection_set is None or node.name.value.startswith("__"):
        return 0
    args = {a.name.value: value_from_ast_untyped(a.value, variables) for a in node.arguments or ()}
    if "first" in args:
        node_cost = 0
        for child in node.selection_set.selections:
            if isinstance(child, FieldNode) and child.name.value == "edges" and child.selection_set:
                for inner in child.selection_set.selections:
                    if isinstance(inner, FieldNode) and inner.name.value == "node":
                        node_cost = max(node_cost, 1 + _children(inner.selection_set, variables))
            elif isinstance(child, FieldNode) and child.name.value == "nodes":
                node_cost = max(node_cost, 1 + _children(child.selection_set, variables))
        return 2 + int(args["first"]) * node_cost
    own = 1 + _children(node.selection_set, variables)
    ids = args.get("ids")
    return len(ids) * own if isinstance(ids, list) else own


class CostBucket:
    """Our running estimate of the store's bucket; `reserve` waits until a cost fits."""

    def __init__(self, maximum: float = 1000.0, restore_rate: float = 50.0) -> None:
        # Until the first response says otherwise: Shopify's smallest documented bucket.
        self.maximum = maximum
        self.restore_rate = restore_rate
        self.available = maximum
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()
        self.known = False  # True once Shopify has told us the bucket's real size and rate
        self.waited = 0.0  # seconds spent pacing, for metrics and tests
        # Points reserved by requests whose answers have not come back: Shopify's report of
        # what is available does not yet count those that have not reached it.
        self.in_flight = 0.0

    def _refill(self) -> None:
        # Shopify's bucket stops filling at its maximum, and it is charged only when a request
        # reaches it. Points reserved for requests still on their way are therefore part of
        # that maximum: a bucket that was full when they left stays full (loses its refill)
        # until they arrive, so our estimate may not refill past `maximum - in_flight`. Capped
        # at `maximum` alone, a request slow to arrive let a burst overtake it and be charged
        # first, and the slow one was throttled.
        now = time.monotonic()
        ceiling = max(self.maximum - self.in_flight, 0.0)
        refilled = self.available + (now - self._updated) * self.restore_rate
        self.available = max(self.available, min(ceiling, refilled))
        self._updated = now

    async def reserve(self, cost: int) -> None:
        if cost > self.maximum:
            # It would never fit: waiting would hang the request for good.
            raise OverflowError(
                f"a query cost of {cost} exceeds the whole bucket ({self.maximum:g})"
            )
        async with self._lock:  # one waiter at a time: first come, first served
            while True:
                self._refill()
                if self.available >= cost:
                    self.available -= cost
                    self.in_flight += cost
                    return
                wait = (cost - self.available) / self.restore_rate
                self.waited += wait
                await asyncio.sleep(wait)

    def landed(self, reserved: float, *, refund: bool = False) -> None:
        """A request's answer came back (or it failed): its reservations are no longer in
        flight; `refund`: Shopify charged nothing for it (refused before it ran)."""
        self.in_flight = max(self.in_flight - reserved, 0.0)
        if refund:
            self._refill()
            self.available = min(self.available + reserved, self.maximum - self.in_flight)

    def observe(self, cost: dict[str, Any], reserved: int) -> None:
        """Correct the estimate with what Shopify reported for a query we reserved for."""
        status = cost.get("throttleStatus") or {}
        try:
            self.maximum = float(status["maximumAvailable"])
            self.restore_rate = float(status["restoreRate"])
            reported = float(status["currentlyAvailable"])
        except (KeyError, TypeError, ValueError):
            return
        self._refill()
        self.known = True
        refund = reserved - float(cost.get("actualQueryCost") or reserved)
        # Never believe in more than Shopify reports, less what we reserved for requests still
        # in flight: those Shopify may not have charged yet. Believing the report alone would
        # forget them, and a burst would then be throttled.
        self.available = min(self.available + max(refund, 0.0), reported - self.in_flight)

    def throttled(self, cost: dict[str, Any]) -> float:
        """After a THROTTLED answer: how long until the query's cost will be available."""
        self.observe(cost, 0)
        requested = float(cost.get("requestedQueryCost") or 0)
        return max((requested - self.available) / self.restore_rate, 0.05)
