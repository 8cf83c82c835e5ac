"""The order in which one limiter serves the waiting groups parked at it: FIFO, or fair between flows.

A *group* is every waiting call with the same path of limiters and the same flow (see ``admission``); its calls
are served in arrival order, so a limiter only ever chooses between group heads.

* ``fifo``: the group whose head arrived first. A heap keyed by head arrival number.
* ``fair``: deficit round-robin over flows (Shreedhar & Varghese, 1995), each admission costing one slot: the flow
  at the front of the rotation is served up to ``weight`` admissions, then goes to the back; a flow that has no
  group parked here leaves the rotation (and forgets its credit) and re-enters at the back. Within a flow, FIFO
  (the same heap, one per flow). A flow that fans out 500 calls thus gets one slot in every ``n`` while ``n``
  flows wait, instead of all of them.

Costs: ``park``, ``unpark`` and ``served`` are O(log g) for g groups of one flow parked here (usually 1), ``peek``
amortised O(log g). A group's heap entry is keyed by its head's arrival number; when the head leaves (admitted or
cancelled) the key goes stale *low*, and ``peek`` re-keys the entry lazily, in place, when it surfaces, so no search
is ever needed and a hand-off allocates nothing here. Entries of groups that left are dropped when they surface, or all at once when they outnumber the live
ones (amortised O(1); memory stays proportional to the parked groups).
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from penguiflow.middleware.admission import Group

Fairness = Literal["fifo", "fair"]
FAIRNESS: tuple[Fairness, ...] = ("fifo", "fair")

_tiebreak = itertools.count()


class FlowQueue:
    """The groups of one flow parked at one limiter, by head arrival; and the flow's round-robin credit."""

    __slots__ = ("credit", "heap", "key", "live", "weight")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.heap: list[list[object]] = []  # [head seq, tiebreak, group]
        self.live = 0  # groups parked (entries whose group still points at them)
        self.weight = 1
        self.credit = 0

    def push(self, group: Group) -> None:
        entry: list[object] = [group.head_seq(), next(_tiebreak), group]
        group.entry = entry
        heapq.heappush(self.heap, entry)

    def top(self) -> Group | None:
        heap = self.heap
        while heap:
            entry = heap[0]
            group: Group = entry[2]  # type: ignore[assignment]
            if group.entry is not entry:  # the group left this queue
                heapq.heappop(heap)
                continue
            seq = group.head.seq  # type: ignore[union-attr]  # a parked group is never empty
            if seq != entry[0]:
                # Its head left: re-key the entry in place and sift it down (keys only grow, so the rest of the
                # heap stays valid) — no new entry per admission.
                entry[0] = seq
                if len(heap) > 1:  # (alone, it is its own heap)
                    heapq.heapreplace(heap, entry)
                    if heap[0] is not entry:
                        continue
            return group
        return None

    def compact(self) -> None:
        if len(self.heap) > 2 * self.live + 8:
            self.heap = [entry for entry in self.heap if entry[2].entry is entry]  # type: ignore[attr-defined]
            heapq.heapify(self.heap)


class Parking:
    """The groups waiting for one limiter, in the order its fairness serves them.

    ``peek()`` is the group to serve next (its head is the candidate), without taking it. ``parked`` counts the
    groups parked here: the hot paths read it rather than calling ``__bool__``."""

    __slots__ = ("_single", "fair", "flows", "parked", "peek")
    peek: Callable[[], Group | None]

    def __init__(self, fairness: Fairness) -> None:
        self.fair = fairness == "fair"
        self.flows: OrderedDict[Hashable, FlowQueue] = OrderedDict()  # the rotation (fair only)
        self._single = FlowQueue(None)  # fifo: every group in one queue
        self.parked = 0
        # FIFO serves its one queue's top directly: a hand-off makes one call here, not two.
        self.peek = self._peek_fair if self.fair else self._single.top

    def __bool__(self) -> bool:
        return self.parked > 0

    def _queue(self, group: Group) -> FlowQueue | None:
        return self.flows.get(group.flow) if self.fair else self._single

    def park(self, group: Group) -> None:
        if self.fair:
            queue = self.flows.get(group.flow)
            if queue is None:
                queue = self.flows[group.flow] = FlowQueue(group.flow)  # joins the rotation at the back
            queue.weight = group.weight
        else:
            queue = self._single
        queue.live += 1
        self.parked += 1
        queue.push(group)

    def unpark(self, group: Group) -> None:
        queue = self._queue(group)
        group.entry = None
        if queue is None:
            return
        queue.live -= 1
        self.parked -= 1
        if queue.live == 0:
            if self.fair:
                del self.flows[queue.key]
            else:
                queue.heap.clear()
        else:
            queue.compact()

    def groups(self) -> list[Group]:
        """Every group parked here (a snapshot; O(entries))."""
        queues = self.flows.values() if self.fair else (self._single,)
        return [entry[2] for queue in queues for entry in queue.heap if entry[2].entry is entry]  # type: ignore[attr-defined,misc]

    def _peek_fair(self) -> Group | None:
        """``peek`` of a fair limiter: the group of the flow whose turn it is."""
        flows = self.flows
        while flows:
            queue = next(iter(flows.values()))
            group = queue.top()
            if group is None:  # cannot happen while ``live`` is right; never spin on it
                del flows[queue.key]
                self.parked -= queue.live
                continue
            if queue.credit <= 0:  # the flow's turn begins
                queue.credit = queue.weight
            return group
        return None

    def served(self, group: Group) -> None:
        """One call of ``group`` was admitted: spend a credit of its flow; its turn ends when none is left."""
        if not self.fair:
            return
        queue = self.flows.get(group.flow)
        if queue is None:
            return
        queue.credit -= 1
        if queue.credit <= 0:
            self.flows.move_to_end(queue.key)
