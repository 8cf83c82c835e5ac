"""Soak: planner waves against the chaotic HTTP API and the (periodically killed) MCP server, for minutes, with
memory and open file descriptors sampled after every wave. Both must stay flat: the least-squares slope over the
second half of the run (after warm-up) is bounded.

``make soak`` runs the long form (``PENGUIFLOW_SOAK=1``; ``PENGUIFLOW_SOAK_S`` seconds, default 300); ``make test``
runs a short form with looser bounds, to catch a gross leak on every run.

What would grow by design in the harness is kept out of the measurement: spans are cleared from the in-memory
exporter after each wave, the scripted LLM forgets its transcript, the HTTP server forgets its per-key attempt
counts, the probes forget the run limiters they saw, and the library's log records go to a sink that formats
and drops them (instead of pytest's capture, which keeps every record of the test).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from penguiflow.planner import ReactPlanner, ScriptedLLM
from tests.reliability.test_chaos import Rig, Shape, chaos_rig, mcp_peaks, mcp_pids, script
from tests.support import otel

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


@dataclass
class Sample:
    t_s: float
    rss: int
    fds: int
    sockets: int
    blocks: int  # Python objects' memory blocks: tells a leak of objects from the allocator's own drift

    @property
    def other_fds(self) -> int:
        """Pipes, files, epoll: everything but sockets, whose number moves with the HTTP connections in use."""
        return self.fds - self.sockets


@dataclass
class SoakFigures:
    waves: int = 0
    calls: int = 0
    kills: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    http_peak: int = 0
    samples: list[Sample] = field(default_factory=list)


def sample(start: float) -> Sample:
    gc.collect()
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1])
    fds = sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            fds += 1
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return Sample(time.monotonic() - start, resident * PAGE, fds, sockets, sys.getallocatedblocks())


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` points, per minute."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60


class _Sink(logging.Filter):
    """A logger filter that formats every record (the cost a real handler pays) and lets none through.

    A filter on each of the library's loggers, not a handler plus ``propagate = False``: pytest attaches its
    capture handler (which keeps every record of a test) to non-propagating loggers too, while a logger's filters
    run before any handler. (Filters do not apply to records propagated from child loggers: hence each logger.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        self.formatter.format(record)
        return False


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    sink = _Sink()
    names = {"penguiflow", "penguiflow.flow"} | {
        name for name in logging.Logger.manager.loggerDict if name.startswith("penguiflow.")
    }
    loggers = [logging.getLogger(name) for name in sorted(names)]
    for logger in loggers:
        logger.addFilter(sink)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(sink)


def kill_mcp(rig: Rig) -> bool:
    peaks = mcp_peaks(rig.peak_file)
    serving = [pid for pid in mcp_pids(rig.peak_file) if peaks.get(pid, 0) > 0]
    if len(serving) != 1:
        return False
    os.kill(serving[0], signal.SIGKILL)
    return True


async def soak(
    rig: Rig, duration_s: float, kill_every_s: float, runs_per_wave: int, *, min_waves: int = 0
) -> SoakFigures:
    """Waves of planner runs for ``duration_s`` and at least ``min_waves`` waves (a loaded machine runs fewer
    waves a second: the slopes need a count of waves, not a length of time)."""
    shape = rig.shape
    llm = ScriptedLLM(script(rig))
    planner = ReactPlanner(
        catalog=[*rig.http.get_tools(), *rig.mcp.get_tools()],
        llm=llm,
        absolute_max_parallel=shape.level1,
        agent_name=otel.unique("soak").replace(".", "_"),
        max_hops=shape.hops + 1,
    )
    figures = SoakFigures()
    start = last_kill = time.monotonic()
    while time.monotonic() - start < duration_s or figures.waves < min_waves:
        if time.monotonic() - last_kill >= kill_every_s and kill_mcp(rig):
            figures.kills += 1
            last_kill = time.monotonic()

        async def one_run(run: int, wave: int = figures.waves) -> None:
            hints: dict[str, Any] = {"max_parallel": shape.level2, "budget": {"max_hops": shape.hops + 1}}
            if run == runs_per_wave - 1:
                hints["deadline_s"] = 0.2  # one run per wave is cut mid-hop
            result = await planner.run(f"w{wave}r{run}", planning_hints=hints)
            assert result.reason in ("answered", "deadline")
            figures.outcomes.update(call.outcome for call in result.calls)
            figures.calls += len(result.calls)

        async with asyncio.timeout(60):  # a wave that hangs fails the soak
            async with asyncio.TaskGroup() as group:
                for run in range(runs_per_wave):
                    group.create_task(one_run(run))
        figures.waves += 1

        # the limits held and every limiter is idle again, wave after wave
        assert not rig.caller_probe.violations(), rig.caller_probe.violations()
        for probe in rig.node_probes.values():
            assert not probe.violations(), probe.violations()
        for limiter in (planner.limiter, *rig.caller_probe.seen.values()):
            assert (limiter.in_flight, limiter.queued) == (0, 0), limiter
        for node in (rig.http, rig.mcp):
            assert node.limiter is not None and (node.limiter.in_flight, node.limiter.queued) == (0, 0)
        figures.http_peak = max(figures.http_peak, rig.api.stats.peak("chaos"))
        assert figures.http_peak <= shape.http_limit
        figures.faults.update(rig.api.stats.faults())

        # forget what the harness itself accumulates, then measure
        rig.api.stats.reset()
        rig.caller_probe.seen.clear()
        rig.caller_probe.now.clear()
        rig.caller_probe.peak.clear()
        llm.calls.clear()
        otel.SPANS.clear()
        figures.samples.append(sample(start))
    assert max(mcp_peaks(rig.peak_file).values()) <= shape.mcp_limit
    return figures


def check_flat(
    figures: SoakFigures,
    shape: Shape,
    *,
    rss_mib_per_min: float,
    blocks_per_min: float,
    fds_per_min: float,
    label: str,
) -> None:
    """RSS, Python's allocated blocks and non-socket descriptors (pipes, files, epoll — steady when nothing
    leaks) must have a flat least-squares slope over the second half.

    RSS does not creep when nothing leaks, but it steps: now and then the allocator keeps a few more MiB (seen:
    flat for 200 s, then +2.3 MiB at once, Python's block count unmoved). A step of ``RSS_STEP_MIB`` inside the
    fitted window is tolerated, which matters only for short windows; the block count catches a leak of objects
    whatever the window. Sockets come and go with the HTTP connections in use, so their slope is noise; they
    are held to a hard cap instead: the two event loops' self-pipes, the listening socket, and both ends of at
    most ``http_limit`` connections (the pool's size), plus a little slack for a connection being replaced."""
    half = figures.samples[len(figures.samples) // 2 :]
    rss_slope = slope_per_min([(s.t_s, s.rss / MIB) for s in half])
    other_slope = slope_per_min([(s.t_s, s.other_fds) for s in half])
    fd_slope = slope_per_min([(s.t_s, s.fds) for s in half])
    block_slope = slope_per_min([(s.t_s, s.blocks) for s in half])
    socket_cap = 5 + 2 * shape.http_limit + 3
    window_min = (half[-1].t_s - half[0].t_s) / 60
    rss_bound = max(rss_mib_per_min, RSS_STEP_MIB / window_min)
    first, last = figures.samples[0], figures.samples[-1]
    print(
        f"\n{label}: {figures.waves} waves, {figures.calls} calls in {last.t_s:.0f}s, "
        f"MCP server killed {figures.kills}x; outcomes {dict(figures.outcomes)}; "
        f"HTTP faults {dict(figures.faults)}; HTTP server peak {figures.http_peak}/{shape.http_limit}"
        f"\n  RSS {first.rss / MIB:.1f} -> {last.rss / MIB:.1f} MiB, slope over the second half "
        f"{rss_slope:+.3f} MiB/min (bound {rss_bound:.2f}); Python blocks {first.blocks} -> {last.blocks}, "
        f"slope {block_slope:+.0f}/min (bound {blocks_per_min:g})"
        f"\n  RSS along the run: "
        + ", ".join(
            f"{s.t_s:.0f}s {s.rss / MIB:.1f}"
            for s in figures.samples[:: max(1, len(figures.samples) // 8)] + figures.samples[-1:]
        )
        + "\n"
        f"\n  fds {first.fds} -> {last.fds}, slope {fd_slope:+.2f}/min; without sockets "
        f"{first.other_fds} -> {last.other_fds}, slope {other_slope:+.3f}/min (bound {fds_per_min}); "
        f"sockets {min(s.sockets for s in figures.samples)}..{max(s.sockets for s in figures.samples)} "
        f"(cap {socket_cap})"
    )
    assert figures.waves >= 10, "too few waves to fit a slope"
    assert rss_slope < rss_bound, f"RSS grows {rss_slope:.3f} MiB/min"
    assert block_slope < blocks_per_min, f"Python objects pile up: {block_slope:.0f} blocks/min"
    assert other_slope < fds_per_min, f"open descriptors grow {other_slope:.2f}/min"
    assert max(s.sockets for s in figures.samples) <= socket_cap, "sockets leak"


RSS_STEP_MIB = 4.0
SOAK_SHAPE = Shape(hops=2, fanout=8, http_queue=64)


@pytest.mark.soak
@pytest.mark.timeout(0)
@pytest.mark.skipif(
    os.environ.get("PENGUIFLOW_SOAK") != "1",
    reason="a long soak run: `make soak` (PENGUIFLOW_SOAK=1, PENGUIFLOW_SOAK_S seconds, default 300)",
)
async def test_soak_memory_and_fds_stay_flat(
    tmp_path: Path, quiet_logs: None, pytestconfig: pytest.Config
) -> None:
    duration_s = float(os.environ.get("PENGUIFLOW_SOAK_S", "300"))
    async with chaos_rig(SOAK_SHAPE, tmp_path) as rig:
        figures = await soak(rig, duration_s, kill_every_s=15, runs_per_wave=6)
    # The slopes are the point of `make soak`: show them without -s. (Not the capsys fixture: it swaps
    # sys.stderr for an object without a file descriptor, which the MCP subprocess cannot inherit.)
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        check_flat(
            figures,
            SOAK_SHAPE,
            rss_mib_per_min=1.0,
            blocks_per_min=3000,
            fds_per_min=0.5,
            label=f"soak ({duration_s:g}s)",
        )


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_short_soak_memory_and_fds_stay_flat(tmp_path: Path, quiet_logs: None) -> None:
    async with chaos_rig(SOAK_SHAPE, tmp_path) as rig:
        figures = await soak(rig, 20, kill_every_s=8, runs_per_wave=6, min_waves=12)
    check_flat(
        figures,
        SOAK_SHAPE,
        rss_mib_per_min=12.0,
        blocks_per_min=60000,
        fds_per_min=3.0,
        label="short soak (20s)",
    )
