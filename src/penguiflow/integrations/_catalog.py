"""What every "catalog as the framework's tools" direction shares: reading a catalog, naming its tools."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from penguiflow.planner.llm.openai import encode_name
from penguiflow.tools.catalog import ToolEntry
from penguiflow.tools.node import NotConnectedError, PendingTools

__all__ = ["Catalog", "catalog_entries", "function_name", "resolved_entries"]


@runtime_checkable
class Catalog(Protocol):
    """Anything with ``get_tools()``: a connected ``ToolNode``."""

    def get_tools(self) -> list[ToolEntry]: ...


def _listed(catalog: Catalog | Iterable[ToolEntry]) -> list[ToolEntry]:
    entries = list(catalog.get_tools()) if isinstance(catalog, Catalog) else list(catalog)
    for entry in entries:
        if not isinstance(entry, ToolEntry):
            raise TypeError(f"catalog: expected ToolEntry items, got {type(entry).__name__}")
    return entries


def catalog_entries(catalog: Catalog | Iterable[ToolEntry]) -> list[ToolEntry]:
    """The entries of a ``ToolNode`` or of an iterable of them. A node that has not connected yet has no tools
    to offer: :class:`~penguiflow.tools.NotConnectedError` says to ``await node.connect()`` first."""
    entries = _listed(catalog)
    for entry in entries:
        if isinstance(entry, PendingTools):
            raise NotConnectedError(f"{entry.name}: the tools are not known yet: await node.connect() first")
    return entries


async def resolved_entries(catalog: Catalog | Iterable[ToolEntry]) -> list[ToolEntry]:
    """Like :func:`catalog_entries`, connecting the nodes that have not connected yet."""
    entries: list[ToolEntry] = []
    for entry in _listed(catalog):
        entries.extend(await entry.resolve() if isinstance(entry, PendingTools) else [entry])
    return entries


def function_name(name: str) -> str:
    """A tool name every model API accepts (``^[a-zA-Z0-9_-]{1,64}$``), the planner's encoding (injective:
    letters, digits and ``_`` unchanged, ``.`` as ``--``, see :func:`penguiflow.planner.llm.openai.encode_name`)."""
    return encode_name(name)
