"""The planner's errors: bad hints, an LLM that cannot be reached, an LLM whose replies cannot be used."""

from __future__ import annotations

from penguiflow.errors import ConfigurationError, PenguiflowError

__all__ = [
    "LLMAuthenticationError",
    "LLMError",
    "LLMOutputError",
    "LLMResponseError",
    "PlannerError",
    "PlanningHintsError",
    "ScriptExhaustedError",
]


class PlannerError(PenguiflowError):
    """Base class of the errors a planner run raises."""


class PlanningHintsError(ConfigurationError):
    """``planning_hints`` has an unknown key or a value of the wrong type; ``field`` names it (``budget.max_hops``)."""


class LLMError(PlannerError):
    """The LLM could not be asked: no credentials, a transport failure, an error status."""


class LLMAuthenticationError(LLMError):
    """No API key was configured (``OPENAI_API_KEY``), or the provider refused it (401/403)."""


class LLMResponseError(LLMError):
    """The provider answered with an error status or a body that is not a Chat Completions reply."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LLMOutputError(PlannerError):
    """The LLM kept producing unusable replies (bad JSON arguments, unknown tools, arguments the tool's schema
    refuses, empty replies) after being told what was wrong ``attempts`` times."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class ScriptExhaustedError(PlannerError):
    """A :class:`~penguiflow.planner.ScriptedLLM` was asked for more replies than it was given."""
