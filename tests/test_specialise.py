"""``middleware/specialise.py``: a runner compiled with what its closure decides, and nothing else changed."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from penguiflow.middleware import specialise as specialise_module
from penguiflow.middleware.specialise import specialise


def _runner(limit: Any, strict: bool) -> Any:
    async def run(value: int, extra: Any = None) -> list[Any]:
        seen: list[Any] = []
        if limit is not None and value > limit:
            seen.append("over")
        elif strict or extra is not None:
            seen.append("strict")
        try:
            seen.append(value)
        finally:
            if limit is not None:
                seen.append("released")
        return seen

    return run


@pytest.mark.parametrize("limit", [None, 3])
@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("value", [1, 5])
async def test_a_specialised_runner_does_what_the_runner_does(limit: Any, strict: bool, value: int) -> None:
    run = _runner(limit, strict)
    made = specialise(run)
    assert made is not run and made.__code__.co_firstlineno == run.__code__.co_firstlineno
    assert await made(value) == await run(value)
    assert await made(value, extra=1) == await run(value, extra=1)
    # What the closure decided is no longer read: a limit of None leaves no trace of ``limit`` in the code.
    assert ("limit" in made.__code__.co_freevars) == (limit is not None)
    assert ("strict" in made.__code__.co_freevars) is False


async def test_known_facts_decide_too() -> None:
    run = _runner(None, False)
    made = specialise(run, {"extra": False})  # extra is known to be None
    assert await made(1) == [1] and await made(1, extra=object()) == [1]  # what the caller promised


async def test_without_its_source_the_runner_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """An application frozen without its .py files: nothing to compile, the runner itself runs."""

    def fresh(limit: Any) -> Any:
        async def run(value: int) -> Any:  # a code object specialise has not seen yet
            return "over" if limit is not None and value > limit else value

        return run

    def no_source(_obj: Any) -> str:
        raise OSError("could not get source code")

    monkeypatch.setattr(inspect, "getsource", no_source)
    run = fresh(3)
    assert specialise(run) is run and await run(5) == "over"
    other = fresh(None)
    assert specialise(other) is other and await other(5) == 5  # each keeps its own closure
    assert not any(key[0] is run.__code__ for key in specialise_module._FACTORIES)
