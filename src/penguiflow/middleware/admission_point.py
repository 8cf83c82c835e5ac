"""Where a stack admits its calls, and admission for layers that are not a ``ConcurrencyLimit``.

The engine decides the admission point of every stack (:func:`place_admission`): the innermost layer that
declares ``admission_point = True`` (``ConcurrencyLimit``, :class:`CallerLimits`, or a plug-in using
:func:`admit`), else a ``CallerLimits`` just outside the trailing ``Timeout`` layers. There the caller's limits
(``call.limits``: the planner's Levels 1 and 2) are taken with the point's own in one decision
(:mod:`penguiflow.middleware.admission`), so no stack, whatever its layers, escapes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from penguiflow.middleware import admission
from penguiflow.middleware.admission import Path
from penguiflow.middleware.call import Call, CallNext, Middleware
from penguiflow.middleware.concurrency import ConcurrencyLimit, acquire_path, join
from penguiflow.middleware.timeout import Timeout

__all__ = ["Admission", "CallerLimits", "admit", "place_admission"]


class Admission:
    """Slots held at every limiter of one admission (from :func:`admit`); :meth:`release` gives them back."""

    __slots__ = ("_call", "_joint", "_released", "path", "waited_s")

    def __init__(self, call: Call, path: Path, waited_s: float, joint: bool) -> None:
        self._call = call
        self.path = path
        self.waited_s = waited_s
        self._joint = joint
        self._released = False
        if joint:
            call._admitted = True

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._joint:
            self._call._admitted = False
        if self.path:
            admission.release(self.path)


async def admit(call: Call, *limiters: ConcurrencyLimit, at: object = None) -> Admission:
    """Admit ``call`` at ``limiters`` — and at the caller's limits (``call.limits``) when the stack made ``at``
    its admission point — in one decision: the call waits holding no slot. For a plug-in layer that declares
    ``admission_point = True``: ``admission = await admit(call, self.local, at=self)``, then
    ``admission.release()`` when the call is done. Without it the engine admits the caller's limits right
    inside such a layer, after it."""
    joint = bool(call.limits) and at is not None and call._point is at and not call._admitted
    path = join(call.limits, limiters) if joint else limiters
    waited = await acquire_path(path, call) if path else 0.0
    return Admission(call, path, waited, joint)


class CallerLimits:
    """Marks where the caller's limits (the planner's Levels 1 and 2, ``call.limits``) are admitted in a stack
    that has no ``ConcurrencyLimit`` of its own (a native tool: ``log_flow_events → CallerLimits → Timeout``).

    Where the stack has a limiter inside it, that limiter is the admission point and takes the caller's limits
    in the same decision as its own; this layer then passes calls through. With no caller limits it is a
    pass-through too. Retry belongs outside it: a call sleeping in back-off holds no slot.
    """

    admission_point: ClassVar[bool] = True

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        if not call.limits or call._point is not self or call._admitted:
            return await call_next(call)
        held = await admit(call, at=self)
        try:
            return await call_next(call)
        finally:
            held.release()


class _AdmitAfter:
    """Inside a plug-in admission point: admits the caller's limits if the plug-in did not (see :func:`admit`)."""

    def __init__(self, point: object) -> None:
        self.point = point

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        if not call.limits or call._admitted or call._point is not self.point:
            return await call_next(call)
        held = await admit(call, at=self.point)
        try:
            return await call_next(call)
        finally:
            held.release()


def place_admission(layers: Sequence[Middleware]) -> tuple[list[Middleware], object]:
    """The layers a stack runs, and its admission point: the innermost layer declaring ``admission_point``;
    with none, a ``CallerLimits`` just outside the trailing ``Timeout`` layers (queueing never counts against
    an attempt). A plug-in point gets the engine's check right inside it, so the caller's limits always apply."""
    index = None
    for i, layer in enumerate(layers):
        if getattr(layer, "admission_point", False) is True:
            index = i
    if index is None:
        at = len(layers)
        while at > 0 and isinstance(layers[at - 1], Timeout):
            at -= 1
        inserted = CallerLimits()
        return [*layers[:at], inserted, *layers[at:]], inserted
    point: object = layers[index]
    if type(point) is CallerLimits or (
        isinstance(point, ConcurrencyLimit) and type(point).__call__ is ConcurrencyLimit.__call__
    ):
        return list(layers), point
    return [*layers[: index + 1], _AdmitAfter(point), *layers[index + 1 :]], point
