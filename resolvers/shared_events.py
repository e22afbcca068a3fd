"""One execution per event for every subscriber that would get the same answer.

A thousand subscribers of one organization running the same subscription document receive
the same result for each event: executing its selection once per subscriber was most of the
cost of a delivery (bench/realtime.py). The executor below keeps, for a short while, the
result of each (document, variables, operation, organization, role, event), and a subscriber
whose key matches takes it instead of executing again. What may differ between two
subscribers of one key is not in the answer: every field's visibility follows the actor's
organization and role (and whether it is an API key); the one field that depends on the
person asking (`Person.memberships`) puts the person into the key when the document selects
it. An answer with errors is shared too: it is what that event gives to that key.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any

from graphql import ExecutionResult, FieldNode, OperationDefinitionNode, visit
from graphql.language import Visitor

from resolvers.fast_fields import PlannedExecutor

_KEPT = 512  # results kept: a burst of events times the distinct subscriptions of one moment
_PERSONAL_FIELDS = frozenset({"memberships"})


class _PersonalFields(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.name.value in _PERSONAL_FIELDS:
            self.found = True


def _personal(nodes: list[Any]) -> bool:
    """Whether the operation (or a fragment of its document) selects a field whose answer
    depends on the person asking."""
    finder = _PersonalFields()
    for node in nodes:
        visit(node, finder)
    return finder.found


# Keyed by the operation node's id: a document checked once (resolvers/documents.py) is one
# object for every subscriber that sent its text; the node is kept beside the result so a
# reused id is never taken for it.
_results: OrderedDict[tuple[Any, ...], tuple[OperationDefinitionNode, asyncio.Future[Any]]] = (
    OrderedDict()
)
_personal_operations: dict[int, tuple[OperationDefinitionNode, bool]] = {}
executions = 0  # subscription events executed (not shared) in this process


class SharedEventExecutor(PlannedExecutor):
    """Strawberry's executor (with `PlannedExecutor`'s short path), sharing each subscription
    event's result (module docstring)."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        key = self._shared_key()
        if key is None:
            return super().execute_operation(serially)
        operation = self.operation
        kept = _results.get(key)
        if kept is not None and kept[0] is operation:
            return _shared(kept[1])
        global executions
        executions += 1
        result = super().execute_operation(serially)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        _results[key] = (operation, future)
        while len(_results) > _KEPT:
            _results.popitem(last=False)
        if not asyncio.iscoroutine(result) and not isinstance(result, asyncio.Future):
            future.set_result(result)
            return result
        return _settle(result, future)

    def _shared_key(self) -> tuple[Any, ...] | None:
        seq = _event_seq(self.root_value)
        actor = getattr(self.context_value, "actor_or_error", None)
        if seq is None or actor is None or not hasattr(actor, "role"):
            return None
        try:
            variables = json.dumps(self.variable_values.coerced, sort_keys=True)
        except (TypeError, ValueError):
            return None  # values JSON cannot tell apart: not shared
        return (
            id(asyncio.get_running_loop()),
            id(self.operation),
            variables,
            actor.org_id,
            actor.role,
            actor.api_key_id is None,
            actor.person_id if self._is_personal() else None,
            seq,
        )

    def _is_personal(self) -> bool:
        operation = self.operation
        known = _personal_operations.get(id(operation))
        if known is None or known[0] is not operation:
            if len(_personal_operations) > 1024:
                _personal_operations.clear()
            nodes = [operation, *self.fragment_definitions.values()]
            known = (operation, _personal(nodes))
            _personal_operations[id(operation)] = known
        return known[1]


def _event_seq(root: Any) -> int | None:
    record = getattr(root, "record", None) or getattr(getattr(root, "event", None), "record", None)
    seq = getattr(record, "seq", None)
    return seq if isinstance(seq, int) else None


async def _settle(result: Any, future: asyncio.Future[Any]) -> ExecutionResult:
    try:
        value: ExecutionResult = await result
    except BaseException as exc:
        if not future.done():
            future.set_exception(exc)
            future.exception()  # retrieved: whoever shares it re-raises it
        raise
    if not future.done():
        future.set_result(value)
    return value


async def _shared(future: asyncio.Future[Any]) -> ExecutionResult:
    value: ExecutionResult = await asyncio.shield(future)
    return value
