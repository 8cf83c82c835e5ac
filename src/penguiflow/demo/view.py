"""The demo's terminal view: a live table per limiter while the workload runs, a summary table at the end.

On a terminal it redraws in place (``rich.live``); when stdout is not a TTY (CI, a pipe, ``make demo | tee``) it
prints one plain line per limiter every ``interval`` seconds instead, so the log stays readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TextIO

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from penguiflow.demo.events import RecentEvents
from penguiflow.demo.stats import Collector, LimiterRow, Snapshot

SAMPLE_S = 0.2  # how often the metrics are collected: peaks in flight and queued are sampled at this rate
LEVEL_LABEL = {1: "L1 planner", 2: "L2 run", 3: "L3 source"}  # the plain lines' labels


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def _ordered(snap: Snapshot) -> list[LimiterRow]:
    return sorted(snap.limiters.values(), key=lambda row: (row.level, row.name))


def _retries(snap: Snapshot, row: LimiterRow) -> int:
    # Retries and timeouts belong to tool sources (Level 3); the planner levels show the totals.
    return snap.retries_of(row.name) if row.level == 3 else snap.retries_of()


def _timeouts(snap: Snapshot, row: LimiterRow) -> int:
    return snap.timeouts_of(row.name) if row.level == 3 else snap.timeouts_of()


def _adaptive(row: LimiterRow) -> str:
    """The adaptive part of a row: the estimate's inputs and the limit's range so far ("" for a static one)."""
    if not row.adaptive:
        return ""
    inputs = f"rtt {_ms(row.rtt)} / base {_ms(row.baseline)}" if row.baseline is not None else "loss-based"
    return f"{inputs}, limit {row.low_limit}..{row.high_limit}"


def _columns(table: Table, snap: Snapshot, headers: tuple[str, ...]) -> None:
    widest = max((len(name) + 3 for name in snap.limiters), default=10)
    for header in headers:
        if header == "limiter":  # never truncate a limiter's name: it is what the user looks for
            table.add_column(header, no_wrap=True, min_width=max(widest, len(header)))
        else:
            table.add_column(header, justify="right", no_wrap=True)


def live_table(snap: Snapshot, elapsed: float, duration: float) -> Table:
    table = Table(
        title=f"penguiflow demo — {elapsed:4.1f}s / {duration:.0f}s — runs {snap.runs}, hops {snap.hops}, "
        f"calls {snap.calls_of()}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
        pad_edge=False,
    )
    _columns(
        table,
        snap,
        ("limiter", "in flight", "queued", "wait p95", "re-sent", "timed out", "rejected", "adaptive limit"),
    )
    for row in _ordered(snap):
        full = row.limit and row.in_flight >= row.limit
        table.add_row(
            f"L{row.level} {row.name}",
            Text(f"{row.in_flight:>3}/{row.limit}", style="bold red" if full else ""),
            Text(str(row.queued), style="yellow" if row.queued else ""),
            _ms(row.wait.quantile(0.95)),
            str(_retries(snap, row)),
            str(_timeouts(snap, row)),
            str(row.rejected),
            _adaptive(row),
        )
    return table


def plain_lines(snap: Snapshot, elapsed: float) -> list[str]:
    lines = [f"[{elapsed:5.1f}s] runs={snap.runs} hops={snap.hops} calls={snap.calls_of()}"]
    for row in _ordered(snap):
        lines.append(
            f"[{elapsed:5.1f}s]   {LEVEL_LABEL[row.level]:<10} {row.name:<8} in_flight={row.in_flight}/{row.limit} "
            f"queued={row.queued} wait_p95={_ms(row.wait.quantile(0.95))} re_sent={_retries(snap, row)} "
            f"timed_out={_timeouts(snap, row)} rejected={row.rejected}"
            + (f" adaptive: {_adaptive(row)}" if row.adaptive else "")
        )
    return lines


def summary_table(snap: Snapshot) -> Table:
    table = Table(
        title="Summary per limiter",
        title_justify="left",
        # Calls and attempts are different units (a call is attempted up to max_attempts times): each column
        # says which it counts.
        caption="peak: most in flight/limit (adaptive: /the highest limit it reached); queued: most waiting; "
        "p50/p95: queue wait of the calls that waited\n"
        "calls ok/err: calls by outcome; re-sent, timed out: attempts",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
        pad_edge=False,
    )
    _columns(
        table,
        snap,
        ("limiter", "peak", "queued", "p50", "p95", "calls ok/err", "re-sent", "timed out", "rejected"),
    )
    for row in _ordered(snap):
        calls = ""
        if row.level == 3:
            ok = snap.calls_of(row.name, "success")
            calls = f"{ok}/{snap.calls_of(row.name) - ok}"
        table.add_row(
            f"L{row.level} {row.name}",
            # An adaptive limit moves: its peak is set against the highest limit it reached, not the current one
            # (a peak of 5 over "2" reads as a broken limit when the limit was 8 at that time).
            f"{row.peak_in_flight}/{row.high_limit if row.adaptive else row.limit}",
            str(row.peak_queued),
            _ms(row.wait.quantile(0.5)),
            _ms(row.wait.quantile(0.95)),
            calls,
            str(_retries(snap, row)),
            str(_timeouts(snap, row)),
            str(row.rejected),
        )
    native = snap.calls_of("native")
    if native:
        ok = snap.calls_of("native", "success")
        table.add_row("native", "no limit", "", "", "", f"{ok}/{native - ok}", "", "", "")
    return table


def findings(snap: Snapshot) -> list[str]:
    """One line per thing the demo is meant to show, with the numbers that show it."""
    lines: list[str] = []
    for row in _ordered(snap):
        if row.level == 1:
            lines.append(
                f"Level 1 ceiling: '{row.name}' peaked at {row.peak_in_flight}/{row.limit} in flight, "
                f"{row.peak_queued} queued behind it"
            )
        elif row.level == 2:
            lines.append(
                f"Level 2 per-run limit: peaked at {row.peak_in_flight} in flight, {row.peak_queued} queued (all runs with max_parallel together)"
            )
        elif row.adaptive:
            changes = ", ".join(f"{reason}×{n}" for reason, n in sorted(row.changes.items()))
            lines.append(
                f"Adaptive limit: '{row.name}' moved between {row.low_limit} and {row.high_limit} "
                f"({changes or 'no change'}) following its backend's capacity; now {row.limit}, "
                + (f"rtt {_ms(row.rtt)} vs baseline {_ms(row.baseline)}" if row.baseline is not None else "")
            )
        elif row.peak_queued:
            lines.append(
                f"Level 3 queueing: '{row.name}' ran {row.peak_in_flight}/{row.limit} with up to {row.peak_queued} "
                f"queued (wait p95 {_ms(row.wait.quantile(0.95))})"
            )
    reasons = snap.retry_reasons()
    if reasons:
        detail = ", ".join(f"{reason}×{n}" for reason, n in sorted(reasons.items()))
        lines.append(
            f"Retries with back-off: {snap.retries_of()} attempts re-sent ({detail}); Retry-After honoured on 429"
        )
    if snap.timeouts_of():
        detail = ", ".join(f"{source}×{n}" for source, n in sorted(snap.timeouts.items()))
        lines.append(f"Timeouts: {snap.timeouts_of()} attempts timed out ({detail})")
    rejected = sum(row.rejected for row in snap.limiters.values())
    if rejected:
        lines.append(f"Rejections (max_queue full): {rejected}")
    outcomes: dict[str, int] = {}
    for (_source, outcome), n in snap.calls.items():
        outcomes[outcome] = outcomes.get(outcome, 0) + n
    lines.append(
        f"Runs {snap.runs}, hops {snap.hops}, tool calls {snap.calls_of()}: "
        + ", ".join(f"{outcome} {n}" for outcome, n in sorted(outcomes.items()))
    )
    return lines


class View:
    """Shows the collector's snapshots while a workload runs, then the summary."""

    def __init__(
        self,
        collector: Collector,
        duration: float,
        *,
        stream: TextIO | None = None,
        interval: float | None = None,
        recent: RecentEvents | None = None,
    ) -> None:
        self.collector = collector
        self.duration = duration
        self.recent = recent
        self.console = Console(file=stream, highlight=False)
        if (
            not self.console.is_terminal
        ):  # a pipe or a file: wide enough that the summary table stays one line
            self.console = Console(file=stream, highlight=False, width=200)
        self.live = self.console.is_terminal
        self.interval = interval if interval is not None else (SAMPLE_S if self.live else 2.0)
        self.started = time.monotonic()
        self.snapshot = Snapshot()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def print(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Refresh the view in the background for as long as the ``async with`` body runs."""
        self.started = time.monotonic()
        task = asyncio.create_task(self._refresh())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.snapshot = self.collector.collect()

    async def _refresh(self) -> None:
        if self.live:
            with Live(console=self.console, refresh_per_second=4, transient=False) as live:
                while True:
                    self.snapshot = self.collector.collect()
                    table = live_table(self.snapshot, self.elapsed(), self.duration)
                    recent = list(self.recent.lines) if self.recent is not None else []
                    live.update(Group(table, *(Text(f"  {line}", style="dim") for line in recent)))
                    await asyncio.sleep(self.interval)
        else:
            # Collect often (the peaks are sampled), print every `interval`.
            next_print = time.monotonic() + self.interval
            while True:
                await asyncio.sleep(SAMPLE_S)
                self.snapshot = self.collector.collect()
                if time.monotonic() < next_print:
                    continue
                next_print += self.interval
                for line in plain_lines(self.snapshot, self.elapsed()):
                    self.print(line)
                if self.recent is not None:
                    for line in list(self.recent.lines)[-3:]:
                        self.print(f"[{self.elapsed():5.1f}s]   recent: {line}")

    def summary(self) -> Snapshot:
        snap = self.collector.collect()
        self.snapshot = snap
        self.console.print(Group(summary_table(snap)))
        for line in findings(snap):
            self.print(f"  • {line}")
        return snap
