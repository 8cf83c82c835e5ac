"""Penguiflow stacks for the tools of other agent frameworks — one module per framework, each an optional extra.

- :mod:`penguiflow.integrations.langchain` (``penguiflow[langchain]``): an agent middleware for LangChain v1
  ``create_agent``, ``wrap_tool`` for any ``BaseTool``, and a catalog's entries as LangChain tools (LangGraph).
- :mod:`penguiflow.integrations.pydantic_ai` (``penguiflow[pydantic-ai]``): a ``WrapperToolset`` putting any
  toolset behind a stack, and a catalog as a toolset.
- :mod:`penguiflow.integrations.openai_agents` (``penguiflow[openai-agents]``): ``FunctionTool``\\ s and MCP servers
  of the OpenAI Agents SDK behind a stack, and a catalog as ``FunctionTool``\\ s.
- :mod:`penguiflow.integrations.fastmcp` (no extra: fastmcp is a dependency): a FastMCP *server* middleware that
  runs every incoming tool call through a stack, joined to the caller's trace.

Importing this package imports no framework; each module imports its framework when it is imported itself.
All of them are written on the public middleware API (``Stack``, ``Call``, the layers) only.
"""
