"""Joint admission: a call takes a slot at every limiter on its path in one decision, or waits holding none.

A call's *path* is every :class:`~penguiflow.middleware.ConcurrencyLimit` it must pass at its admission point:
the caller's (the planner's Level 2 and Level 1) and the tool source's own (Level 3). The call is admitted when
every limiter on the path has room, and only then does it take a slot at each — so no call ever holds a slot at
one level while it waits at another, and a level's in-flight count is the calls actually running through it.

**The algorithm.** Waiting calls with the same path and the same flow form a *group*, a FIFO list (a doubly
linked list: a waiter leaves it in O(1) when cancelled, and nothing dead is ever kept). Every non-empty group is
*parked* at exactly one limiter of its path that is full: the one it waits for. Invariant, true whenever user code
runs: *a limiter with room has nothing parked at it*. So an arriving call whose path has room everywhere is
admitted at once — it overtakes no one, since anyone older sharing a limiter with it waits for a limiter it does
not use — and one that meets a full limiter joins its group (parked at that limiter if the group is new).

When a limiter gets room (a release, or ``set_limit`` raising it), it serves its parked groups in its policy's
order (:mod:`penguiflow.middleware.fairness`: FIFO by head arrival, or deficit round-robin over flows): the
candidate group's head is admitted if the rest of its path has room; if not, the whole group moves to the full
limiter it now waits for, and the next candidate is tried. This stops when the limiter is full or has nothing
parked. A finished call frees a slot at each limiter of its path; they serve their groups in path order (the
run's Level 2, then Level 1, then the source). Before a limiter serves, the groups waiting at the limiters freed
after it that need it too join its queue; while it serves, a candidate that needs a limiter freed after it
where others still wait moves there, and that limiter stops serving until the later ones have decided (then
serves again). Either way, calls that could both take a freed slot compete under the policy of the limiter they
share (a run's next call, let in by its own Level 2, does not jump the other runs'
queue at a fair Level 1; an older call waiting for its source is not passed by a younger one of its run). Thus

* a younger call is admitted while an older one sharing a limiter still waits only if the older one waits for a
  limiter the younger does not use — or, at a ``fair`` limiter, if the two belong to different flows and the
  round-robin gave the younger one's flow the turn;
* calls of one group (one run to one source, or one limiter used alone) start in arrival order;
* nobody waits while every limiter on its path has room (work-conserving: no head-of-line blocking).

**Cost.** Admission without waiting: O(p) for a path of p limiters (p ≤ 3 under a planner), no allocation.
Joining a queue: O(p) plus O(log g) at the limiter it parks at (g groups of that flow there). A release: O(p)
plus, at each limiter, O(log g) per call admitted and per group moved; a group moves only to a limiter that is
full, so moves are bounded by the groups parked, never by the number of waiting calls. Memory: one waiter (a
future with four slots, ~200 bytes) per waiting call and one small group per distinct (path, flow); a cancelled
waiter is unlinked at once, so 100,000 waiters that time out leave nothing behind.

A limiter belongs to one event loop: the first that uses it. Using it from another loop while calls hold or
wait for its slots raises :class:`~penguiflow.errors.LimiterLoopError` instead of hanging; an idle limiter
moves to the new loop (a planner built at import time serves successive ``asyncio.run()`` calls).
"""

from __future__ import annotations

import asyncio
import itertools
from asyncio import events
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, NoReturn

from penguiflow.errors import LimiterLoopError

if TYPE_CHECKING:
    from penguiflow.middleware.concurrency import ConcurrencyLimit

Path = tuple["ConcurrencyLimit", ...]

_arrivals = itertools.count(1)


class Waiter(asyncio.Future[None]):
    """One waiting call: resolved when it is admitted (it then holds a slot at every limiter of its path)."""

    __slots__ = ("group", "next", "prev", "seq", "waits")
    group: Group | None
    next: Waiter | None
    prev: Waiter | None
    seq: int
    # Multi-limiter paths: at arrival, the group's per-limiter parked time; once admitted, the time the call
    # waited for each limiter of its path.
    waits: list[float] | None


class Group:
    """The waiting calls with one path and one flow, oldest first, parked at one full limiter of the path."""

    __slots__ = ("acc", "at", "entry", "flow", "head", "key", "path", "since", "size", "tail", "weight")

    def __init__(self, path: Path, flow: Hashable, weight: int, key: tuple[Path, Hashable]) -> None:
        self.path = path
        self.flow = flow
        self.weight = weight
        self.key = key
        self.head: Waiter | None = None
        self.tail: Waiter | None = None
        self.size = 0
        self.at: ConcurrencyLimit | None = None  # where it is parked
        self.entry: list[object] | None = None  # its entry in that limiter's parking
        # Time parked at each limiter of the path so far (closed stays) and the start of the current stay: the
        # per-level wait of a call is the growth of these between its arrival and its admission.
        self.acc = [0.0] * len(path)
        self.since = 0.0

    def head_seq(self) -> int:
        assert self.head is not None
        return self.head.seq

    def clock(self, now: float) -> list[float]:
        """Time parked at each limiter of the path, up to ``now``."""
        acc = list(self.acc)
        if self.at is not None:
            acc[self.path.index(self.at)] += now - self.since
        return acc


# --- loops --------------------------------------------------------------------------------------------------
def bind(limiter: ConcurrencyLimit, loop: asyncio.AbstractEventLoop) -> None:
    """Tie ``limiter`` to ``loop`` (its first user), or fail clearly if it still serves calls of another."""
    bound = limiter._loop
    if bound is loop:
        return
    if bound is None or (
        limiter._in_flight == 0 and limiter._waiting == 0 and (bound.is_closed() or not bound.is_running())
    ):
        limiter._loop = loop
        return
    raise LimiterLoopError(
        limiter.name, closed=bound.is_closed(), held=limiter._in_flight, waiting=limiter._waiting
    )


def _check_release_loop(limiter: ConcurrencyLimit) -> None:
    """Waking waiters is only possible on their own loop, and never on a closed one."""
    bound = limiter._loop
    if bound is None:
        return
    running = events._get_running_loop()
    if running is bound:  # the usual case: released on its own loop, which, running, is not closed
        return
    if bound.is_closed() or running is not None:
        raise LimiterLoopError(
            limiter.name, closed=bound.is_closed(), held=limiter._in_flight, waiting=limiter._waiting
        )


# --- admission ----------------------------------------------------------------------------------------------
def try_admit(path: Path) -> bool:
    """Take a slot at every limiter of ``path`` if all have room (then nobody waits for any of them)."""
    for limiter in path:
        if limiter._in_flight >= limiter._limit:
            return False
    for limiter in path:
        limiter._in_flight += 1
    return True


def blocker(path: Path) -> ConcurrencyLimit | None:
    """The limiter a call of ``path`` waits for: the innermost full one (its source before the planner), so a
    call that would wait for its source anyway is counted there, and the planner's queue holds the calls that
    only it holds up."""
    for limiter in reversed(path):
        if limiter._in_flight >= limiter._limit:
            return limiter
    return None


def enqueue(path: Path, flow: Hashable, weight: int, loop: asyncio.AbstractEventLoop) -> Waiter:
    """Queue a call that ``try_admit`` refused; raises ``LimiterRejectedError`` if a bounded queue is full."""
    fair = False
    for limiter in path:
        if limiter.max_queue is not None and limiter._waiting >= limiter.max_queue:
            limiter._reject()
        fair = fair or limiter._parking.fair
    if not fair:
        flow = None  # flows matter only to fair limiters: one group per path otherwise
    key = (path, flow)
    owner = path[0]
    group = owner._groups.get(key)
    waiter = Waiter(loop=loop)
    waiter.seq = next(_arrivals)
    if group is None:
        group = owner._groups[key] = Group(path, flow, weight, key)
        _append(group, waiter)
        full = blocker(path)
        assert full is not None
        _park(group, full, loop.time())
    else:
        _append(group, waiter)
        _count(group.at, group, 1)  # type: ignore[arg-type]
    for limiter in path:
        limiter._waiting += 1
    waiter.waits = group.clock(loop.time()) if len(path) > 1 else None
    return waiter


def withdraw(waiter: Waiter) -> None:
    """Take a waiter that will not be admitted (cancelled, timed out) out of its group, in O(1)."""
    group: Group | None = waiter.group
    if group is None:
        return
    _unlink(group, waiter)
    for limiter in group.path:
        limiter._waiting -= 1
    _count(group.at, group, -1)  # type: ignore[arg-type]
    if group.size == 0:
        _drop(group, group.path[0]._loop.time() if group.path[0]._loop else 0.0)


def release(path: Path) -> None:
    """Give back the slots of one admitted call; the waiters those slots let in are admitted at once."""
    # Integer tests only, unless someone waits here: ``_waiting`` first (a limiter no waiting call's path
    # includes has nothing parked at it), then the groups parked; the loop is checked only when the release does
    # not run on the limiter's own loop. Every check comes before any slot is given back.
    if len(path) == 1:  # a limiter used alone: no limiter is freed after it
        limiter = path[0]
        if limiter._in_flight <= 0:
            _unmatched(limiter)
        if limiter._waiting and limiter._parking.parked:
            if limiter._loop is not events._get_running_loop():
                _check_release_loop(limiter)
            limiter._in_flight -= 1
            grant(limiter)
        else:
            limiter._in_flight -= 1
        return
    for limiter in path:
        if limiter._in_flight <= 0:
            _unmatched(limiter)
        if limiter._waiting and limiter._parking.parked and limiter._loop is not events._get_running_loop():
            _check_release_loop(limiter)
    for limiter in path:
        limiter._in_flight -= 1
    for index, limiter in enumerate(path):
        if limiter._waiting and limiter._parking.parked:
            later = path[index + 1 :]
            if later:
                _pull(limiter, later)
            grant(limiter, later)
    # A limiter that stopped serving to let a candidate compete at a later one may still have room: serve it
    # again now that the later ones have decided (restoring "a limiter with room has nothing parked at it").
    for limiter in path:
        if limiter._in_flight < limiter._limit and limiter._waiting and limiter._parking.parked:
            grant(limiter)


def _unmatched(limiter: ConcurrencyLimit) -> NoReturn:
    raise RuntimeError(f"ConcurrencyLimit {limiter.name!r}: release() without a matching acquire()")


def _pull(limiter: ConcurrencyLimit, later: Path) -> None:
    """Groups waiting at a limiter freed later in the same release that need ``limiter`` too compete here,
    under this limiter's policy: an older call of a run waiting for its source is not passed by a younger
    call of the same run waiting here."""
    loop = limiter._loop
    now = loop.time() if loop is not None else 0.0
    for other in later:
        if other._parking:
            for group in other._parking.groups():
                if limiter in group.path:
                    _unpark(group, now)
                    _park(group, limiter, now)


def grant(limiter: ConcurrencyLimit, later: Path = ()) -> None:
    """``limiter`` has room: admit the heads of its parked groups in its policy's order while it has room.

    A group whose path is full elsewhere moves to that limiter. ``later`` are limiters freed by the same release
    and served after this one: a group needing one of them that has waiters of its own moves there instead of
    being admitted, so it competes with those waiters under *that* limiter's policy — a run's next call, freed
    by its own Level 2 slot, does not take the Level 1 slot ahead of the other runs waiting for Level 1 — and
    this limiter stops serving until they have decided, so nobody behind that group here passes it."""
    parking = limiter._parking
    peek = parking.peek
    loop = limiter._loop
    now = -1.0  # the loop's time, read once a step needs it (one pass is one instant)
    while limiter._in_flight < limiter._limit:
        group = peek()
        if group is None:
            return
        waiter = group.head
        assert waiter is not None
        if waiter.done():  # cancelled, its task has not run yet: it leaves now
            withdraw(waiter)
            continue
        path = group.path
        if len(path) == 1:  # its one limiter is this one, which has room: the head is admitted
            limiter._in_flight += 1
            limiter._waiting -= 1
        else:
            target = blocker(path)
            deferred = False
            if target is None and later:
                target = next((k for k in later if k._parking and k in path), None)
                deferred = target is not None
            if now < 0.0:
                now = loop.time() if loop is not None else 0.0
            if target is not None:
                _unpark(group, now)
                _park(group, target, now)
                if deferred:
                    # Deferred to compete at a later limiter: the groups behind it here must not take this
                    # limiter's room meanwhile (a younger call of its run would pass it); release() serves
                    # this limiter again once the later ones have decided.
                    return
                continue
            for member in path:
                member._in_flight += 1
                member._waiting -= 1
            if waiter.waits is not None:  # the time this call was parked at each limiter of its path
                clock = group.clock(now)
                waiter.waits = [end - start for end, start in zip(clock, waiter.waits, strict=True)]
        _unlink(group, waiter)
        if parking.fair:
            _count(limiter, group, -1)
            parking.served(group)
        else:
            limiter._queued -= 1  # what _count does for a FIFO limiter
        if group.size == 0:
            if now < 0.0:
                now = loop.time() if loop is not None else 0.0
            _drop(group, now)
        if observer is not None:
            observer(waiter, path)
        waiter.set_result(None)


observer: Callable[[Waiter, Path], None] | None = None
"""Tests only: called with each waiter the moment it is admitted, before it is woken."""


# --- bookkeeping --------------------------------------------------------------------------------------------
def _append(group: Group, waiter: Waiter) -> None:
    waiter.group = group
    waiter.next = None
    waiter.prev = group.tail
    if group.tail is None:
        group.head = waiter
    else:
        group.tail.next = waiter
    group.tail = waiter
    group.size += 1


def _unlink(group: Group, waiter: Waiter) -> None:
    before, after = waiter.prev, waiter.next
    if before is None:
        group.head = after
    else:
        before.next = after
    if after is None:
        group.tail = before
    else:
        after.prev = before
    waiter.prev = waiter.next = waiter.group = None
    group.size -= 1


def _count(limiter: ConcurrencyLimit, group: Group, delta: int) -> None:
    limiter._queued += delta
    if limiter._parking.fair and isinstance(group.flow, str):
        counts = limiter._flow_queued
        count = counts.get(group.flow, 0) + delta
        if count:
            counts[group.flow] = count
        else:  # no zeros kept: flows come and go (a tenant key), the dict holds the queued ones only
            counts.pop(group.flow, None)


def _park(group: Group, limiter: ConcurrencyLimit, now: float) -> None:
    group.at = limiter
    group.since = now
    limiter._parking.park(group)
    _count(limiter, group, group.size)


def _unpark(group: Group, now: float) -> None:
    limiter = group.at
    assert limiter is not None
    group.acc[group.path.index(limiter)] += now - group.since
    limiter._parking.unpark(group)
    _count(limiter, group, -group.size)
    group.at = None


def _drop(group: Group, now: float) -> None:
    """An empty group leaves its limiter and the registry."""
    if group.at is not None:
        _unpark(group, now)
    owner = group.path[0]
    if owner._groups.get(group.key) is group:
        del owner._groups[group.key]
