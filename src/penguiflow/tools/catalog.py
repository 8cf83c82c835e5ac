"""Catalog entries: what ``ToolNode.get_tools()`` and ``@tool`` produce and what the planner consumes."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from penguiflow.errors import ToolValidationError
from penguiflow.middleware.call import make_call
from penguiflow.middleware.stack import Stack

if TYPE_CHECKING:
    from penguiflow.middleware.call import Middleware
    from penguiflow.middleware.concurrency import ConcurrencyLimit


@dataclass(eq=False)
class ToolEntry:
    """One tool in a catalog. ``name`` is unique in the catalog (``github.create_issue``, ``local.summarize``);
    ``source`` is the tool source's name, ``None`` for a native tool (which has no per-source limit).
    ``stack`` runs a call of this tool through its source's layers. ``idempotent`` (see
    :attr:`Call.idempotent <penguiflow.middleware.Call.idempotent>`) goes on every call of the tool: whether
    ``Retry`` may re-send it after a failure that does not prove it did not run. ``title`` (a human-readable
    name), ``annotations`` (the source's hints, e.g. MCP's ``readOnlyHint``, ``destructiveHint``) and
    ``output_schema`` (the JSON schema of a result) are as the source describes the tool, when it does."""

    name: str
    description: str
    input_schema: dict[str, Any]
    source: str | None
    stack: Stack = field(repr=False)
    idempotent: bool | None = field(default=None, kw_only=True)
    title: str | None = field(default=None, kw_only=True)
    annotations: dict[str, Any] = field(default_factory=dict, kw_only=True)
    output_schema: dict[str, Any] | None = field(default=None, kw_only=True)

    async def invoke(
        self,
        arguments: Mapping[str, Any],
        *,
        call_id: str | None = None,
        limits: tuple[ConcurrencyLimit, ...] = (),
        layers: tuple[Middleware, ...] = (),
        flow: Hashable | None = None,
        weight: int = 1,
    ) -> Any:
        """Run one call. ``limits`` are the caller's extra limiters (the planner's Level 1 and 2), admitted
        together with the source's own limit whatever the entry's layers; ``layers`` the caller's own layers, run
        outside the source's (the planner's ``middleware``); ``flow`` and ``weight`` the call's fairness key and
        share at ``fair`` limiters (see :class:`~penguiflow.middleware.Call`).

        Arguments that are not a mapping raise :class:`~penguiflow.errors.ToolValidationError` at once."""
        if type(arguments) is not dict and not isinstance(arguments, Mapping):  # a dict: no ABC check
            raise ToolValidationError(
                f"{self.name}: arguments must be a mapping of argument names to values, "
                f"got {type(arguments).__name__}",
                tool=self.name,
            )
        call = make_call(
            self.name,
            dict(arguments),
            self.source,
            self.idempotent,
            call_id=call_id or None,  # none given: the call makes its own when first asked
            limits=limits,
            layers=layers,
            flow=flow,
            weight=weight,
        )
        return await self.stack(call)
