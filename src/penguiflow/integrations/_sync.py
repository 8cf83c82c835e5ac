"""Running a stack from synchronous code: on one background event loop, shared by every sync caller.

A layer's state (a ``ConcurrencyLimit``'s queue) belongs to one event loop, so the sync paths of the
integrations (LangChain's ``invoke``) all run their stacks on this loop, whichever thread calls; the caller's
context variables (the current OpenTelemetry span, LangChain's run config) go with each call. A stack used this
way must not be used from another event loop at the same time. The sync steps themselves run in that loop's
executor, sized well above any sensible limit (``SYNC_WORKERS``) so that it never becomes a hidden one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

SYNC_WORKERS = 64

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            loop.set_default_executor(
                concurrent.futures.ThreadPoolExecutor(SYNC_WORKERS, thread_name_prefix="penguiflow-sync")
            )
            thread = threading.Thread(target=loop.run_forever, name="penguiflow-sync", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run ``factory()`` on the background loop in a copy of the caller's context; block for its result."""
    loop = _background_loop()
    if threading.current_thread() is _thread:
        raise RuntimeError("run_sync called from penguiflow's own background loop: it would wait for itself")
    context = contextvars.copy_context()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def settle(task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            done.cancel()
        elif (error := task.exception()) is not None:
            done.set_exception(error)
        else:
            done.set_result(task.result())

    async def main() -> T:
        return await factory()

    def start() -> None:
        task = loop.create_task(main(), context=context)
        task.add_done_callback(settle)

    loop.call_soon_threadsafe(start)
    return done.result()
