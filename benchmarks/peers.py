"""Peers: penguiflow's MCP tool calls side by side with what a user would pick instead, on the same server.

Every peer drives the same stdio MCP server (``peers_server.py``, started by each client with this
interpreter) through its own client, in a virtual environment of its own (they pin different ``mcp``
versions), one process per (peer, telemetry mode), all of them in each round, the order rotated and reversed
from round to round so that every ratio ours ÷ peer is taken between processes that ran minutes apart at most.

* ``ours``   — this checkout's ``ToolNode`` (the interpreter running this script: the project's venv);
* ``bare``   — a hand-written fastmcp ``Client`` + ``asyncio.Semaphore`` + ``asyncio.timeout`` + tenacity,
  with the fastmcp version ours runs;
* ``pyai``   — Pydantic AI's ``MCPToolset.direct_call_tool`` behind its ``ConcurrencyLimiter``;
* ``oai``    — the OpenAI Agents SDK's ``MCPServerStdio.call_tool`` (+ a Semaphore);
* ``lc``     — LangChain's MCP adapters on one persistent session, called with a ``ToolCall`` (+ a Semaphore);
* ``pf311``  — penguiflow 3.11.2 from PyPI, its ``ToolNode``.

Workloads per process (``peers_client.py``): after a warm-up, 200 sequential ``echo`` calls (median latency,
client CPU per call from ``process_time`` — the steadiest figure on a shared machine — and the server's CPU
per call, which it reports itself), then 200 concurrent ``sleep(20 ms)`` under a limit of 10, three times
(median makespan, against the ideal 0.40 s; the server checks that exactly 10 ran at once). Telemetry ``on``
installs the OpenTelemetry SDK first (batch span processor, in-memory metric reader) and counts the exported
spans per call by instrumentation scope, and how they form traces.

Venvs are built on first use under ``$PENGUIFLOW_PEERS_VENVS`` (default ``~/.cache/penguiflow-peers``) from
the pins below, and rebuilt when the pins change. Run: ``python benchmarks/peers.py [--rounds 5]``;
``--quick`` is a smoke run of ours alone.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _bench
import _instructions

HERE = Path(__file__).resolve().parent
CLIENT = HERE / "peers_client.py"
VENVS = Path(os.environ.get("PENGUIFLOW_PEERS_VENVS", "~/.cache/penguiflow-peers")).expanduser()
MODES = ("off", "on")
TARGET_CPU = 0.95  # ours ÷ the cheapest peer, client CPU per call, in both modes
OWN_SCOPE = "penguiflow"


def _ours(dist: str) -> str:
    return importlib.metadata.version(dist)


@dataclass(frozen=True)
class Peer:
    label: str
    requirements: tuple[str, ...]  # pip arguments; empty: this interpreter
    imports: str  # what must import for the venv to count as built
    versions: tuple[str, ...]  # distributions whose versions the report names


def peers() -> dict[str, Peer]:
    fastmcp, sdk = f"fastmcp=={_ours('fastmcp')}", f"opentelemetry-sdk=={_ours('opentelemetry-sdk')}"
    return {
        "ours": Peer(
            "penguiflow (this checkout) ToolNode", (), "penguiflow.tools", ("penguiflow", "fastmcp", "mcp")
        ),
        "bare": Peer(
            "fastmcp Client + Semaphore + asyncio.timeout + tenacity",
            (fastmcp, "tenacity==9.2.1", sdk),
            "fastmcp, tenacity",
            ("fastmcp", "mcp", "tenacity"),
        ),
        "pyai": Peer(
            "Pydantic AI MCPToolset + ConcurrencyLimiter",
            ("pydantic-ai-slim[mcp]==2.68.0", fastmcp, sdk),
            "pydantic_ai.mcp",
            ("pydantic-ai-slim", "fastmcp", "mcp"),
        ),
        "oai": Peer(
            "OpenAI Agents SDK MCPServerStdio + Semaphore",
            ("openai-agents==0.24.0", sdk),
            "agents.mcp",
            ("openai-agents", "mcp"),
        ),
        "lc": Peer(
            "langchain-mcp-adapters, persistent session + Semaphore",
            ("langchain-mcp-adapters==0.3.2", sdk),
            "langchain_mcp_adapters.tools",
            ("langchain-mcp-adapters", "langchain-core", "mcp"),
        ),
        "pf311": Peer(
            "penguiflow 3.11.2 (PyPI) ToolNode",
            ("penguiflow==3.11.2", "fastmcp<4", "tenacity==9.2.1", sdk),
            "penguiflow.tools",
            ("penguiflow", "fastmcp", "mcp"),
        ),
    }


# --- venvs ------------------------------------------------------------------------------------------------
def python_of(name: str, peer: Peer) -> Path:
    return Path(sys.executable) if not peer.requirements else VENVS / name / "bin" / "python"


def _built(name: str, peer: Peer) -> bool:
    stamp = VENVS / name / "pins"
    wanted = hashlib.sha256(json.dumps(peer.requirements).encode()).hexdigest()
    if not peer.requirements:
        return True
    if not stamp.exists() or stamp.read_text() != wanted:
        return False
    check = [str(python_of(name, peer)), "-c", f"import {peer.imports}, opentelemetry.sdk"]
    return subprocess.run(check, capture_output=True).returncode == 0


def build(name: str, peer: Peer) -> str | None:
    """Builds the venv if it is missing or built from other pins; returns an error, or ``None``."""
    if _built(name, peer):
        return None
    target = VENVS / name
    print(f"[venv] building {name} in {target} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(target)], check=True, capture_output=True)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", *peer.requirements]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return f"pip failed: {done.stderr[-500:]}"
    (target / "pins").write_text(hashlib.sha256(json.dumps(peer.requirements).encode()).hexdigest())
    return None if _built(name, peer) else f"{peer.imports} does not import"


def versions(name: str, peer: Peer) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, platform\n"
        f"print(json.dumps({{d: m.version(d) for d in {list(peer.versions)!r}}} | "
        "{'python': platform.python_version()}))"
    )
    done = subprocess.run([str(python_of(name, peer)), "-c", code], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-200:]}


# --- runs -------------------------------------------------------------------------------------------------
def run_one(name: str, peer: Peer, mode: str, extra: list[str]) -> dict[str, Any]:
    command = [str(python_of(name, peer)), str(CLIENT), name, mode, "--server-python", sys.executable, *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # "on" installs its own SDK
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 600 s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    return {"error": f"exit {done.returncode}: {(done.stderr or done.stdout)[-600:]}"}


# what each process reports, by figure name: (workload, key)
FIGURES = {
    "cpu_us": ("seq", "cpu_us_per_call"),
    "server_cpu_us": ("seq", "server_cpu_us_per_call"),
    "latency_us": ("seq", "median_us"),
    "makespan_s": ("conc", "makespan_s"),
    "conc_cpu_us": ("conc", "cpu_us_per_call"),
}


def figure(result: dict[str, Any], name: str) -> float | None:
    workload, key = FIGURES[name]
    value = result.get(workload, {}).get(key)
    return float(value) if value is not None else None


def summarise(rounds: list[dict[str, dict[str, Any]]], names: list[str]) -> dict[str, Any]:
    """Medians [min, max] over rounds per (peer, mode), and ours ÷ peer per round, then their median."""
    table: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    for mode in MODES:
        for name in names:
            results = [r[f"{name}/{mode}"] for r in rounds if f"{name}/{mode}" in r]
            ok = [r for r in results if "error" not in r]
            entry: dict[str, Any] = {"runs": len(ok), "errors": [r["error"] for r in results if "error" in r]}
            for fig in FIGURES:
                values = [v for r in ok if (v := figure(r, fig)) is not None]
                if values:
                    entry[fig] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
            if ok:
                entry["server_peak"] = max(r["conc"]["server_peak"] for r in ok)
                for workload in ("seq", "conc"):
                    if "telemetry" in ok[-1][workload]:
                        entry[f"{workload}_telemetry"] = ok[-1][workload]["telemetry"]
                if "instruments" in ok[-1]:
                    entry["instruments"] = ok[-1]["instruments"]
            table[f"{name}/{mode}"] = entry
            if name == "ours":
                continue
            pair: dict[str, Any] = {}
            for fig in ("cpu_us", "makespan_s", "conc_cpu_us", "latency_us"):
                per_round = []
                for r in rounds:
                    mine, theirs = r.get(f"ours/{mode}", {}), r.get(f"{name}/{mode}", {})
                    a, b = figure(mine, fig), figure(theirs, fig)
                    if a is not None and b:
                        per_round.append(a / b)
                if per_round:
                    pair[fig] = {
                        "median": statistics.median(per_round),
                        "min": min(per_round),
                        "max": max(per_round),
                    }
            ratios[f"ours/{name} ({mode})"] = pair
    return {"results": table, "ratios": ratios}


def targets(summary: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The issue's targets, judged from this run."""
    found: dict[str, Any] = {}
    others = [n for n in names if n != "ours"]
    results, ratios = summary["results"], summary["ratios"]
    for mode in MODES:
        priced = [n for n in others if "cpu_us" in results.get(f"{n}/{mode}", {})]
        if priced:
            best = min(priced, key=lambda n: results[f"{n}/{mode}"]["cpu_us"]["median"])
            ratio = ratios[f"ours/{best} ({mode})"].get("cpu_us", {}).get("median")
            found[f"cpu_vs_best_peer_{mode}"] = {
                "best_peer": best,
                "ratio": ratio,
                "target": TARGET_CPU,
                "met": ratio is not None and ratio <= TARGET_CPU,
            }
        worst = {
            n: ratios[f"ours/{n} ({mode})"]["makespan_s"]["median"]
            for n in others
            if "makespan_s" in ratios.get(f"ours/{n} ({mode})", {})
        }
        if worst:
            found[f"makespan_vs_every_peer_{mode}"] = {
                "ratios": worst,
                "target": 1.0,
                "met": max(worst.values()) <= 1.0,
            }
    ours_on = results.get("ours/on", {})
    if "seq_telemetry" in ours_on:
        seq = ours_on["seq_telemetry"]
        foreign = {s: n for s, n in seq["spans_per_call"].items() if s != OWN_SCOPE}
        own_roots = sum(n for label, n in seq["roots_per_call"].items() if label.startswith(OWN_SCOPE))
        found["one_span_per_call"] = {
            "spans_per_call": seq["spans_per_call"],
            "roots_per_call": own_roots,
            "met": not foreign and own_roots == 1.0,
        }
    return found


def report(summary: dict[str, Any], names: list[str]) -> None:
    def cell(entry: dict[str, Any], fig: str, digits: int = 0) -> str:
        if fig not in entry:
            return "-"
        f = entry[fig]
        return f"{f['median']:.{digits}f} [{f['min']:.{digits}f}..{f['max']:.{digits}f}]"

    columns = [
        "peer",
        "client CPU µs/call",
        "server CPU µs",
        "latency µs",
        "makespan s",
        "conc CPU µs",
        "spans/call",
    ]
    for mode in MODES:
        rows = []
        for name in names:
            entry = summary["results"][f"{name}/{mode}"]
            spans = entry.get("seq_telemetry", {}).get("spans_per_call", {}) if mode == "on" else ""
            rows.append(
                [
                    name if not entry["errors"] else f"{name} ({len(entry['errors'])} failed)",
                    cell(entry, "cpu_us"),
                    cell(entry, "server_cpu_us"),
                    cell(entry, "latency_us"),
                    cell(entry, "makespan_s", 3),
                    cell(entry, "conc_cpu_us"),
                    json.dumps(spans) if spans else "",
                ]
            )
        print(_bench.table(f"\nPeers, telemetry {mode}: medians over rounds [min..max]", columns, rows))
    rows = []
    for pair, e in summary["ratios"].items():
        rows.append(
            [pair, *(cell(e, fig, 2) for fig in ("cpu_us", "makespan_s", "conc_cpu_us", "latency_us"))]
        )
    columns = ["ours ÷ peer, per round", "client CPU", "makespan", "conc CPU", "latency"]
    print(
        _bench.table(
            "\nRatios (median of the per-round ratios [min..max]; < 1: ours is cheaper)", columns, rows
        )
    )


def count_instructions(names: list[str], known: dict[str, Peer], calls: int) -> dict[str, Any]:
    """Instructions per call of each peer's client (callgrind; the server is not counted), both workloads:
    deterministic, so one run each; ours ÷ peer from them."""
    extra = ["--seq", str(calls), "--conc", str(calls), "--reps", "1", "--mark"]

    def one(entry: tuple[str, str]) -> tuple[str, dict[str, Any]]:
        name, mode = entry
        peer = known[name]
        argv = [
            str(python_of(name, peer)),
            str(CLIENT),
            name,
            mode,
            "--server-python",
            sys.executable,
            *extra,
        ]
        counts, done = _instructions.count(
            argv, env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        )
        if done.returncode != 0 or len(counts) != 2:
            return f"{name}/{mode}", {"error": f"exit {done.returncode}: {done.stderr[-400:]}"}
        seq, conc = _instructions.per_call(counts, calls)
        print(
            f"[instructions] {name}/{mode}: {seq:,.0f} per sequential call, {conc:,.0f} per concurrent",
            flush=True,
        )
        return f"{name}/{mode}", {"seq_per_call": seq, "conc_per_call": conc}

    entries = [(name, mode) for mode in MODES for name in names]
    with ThreadPoolExecutor(2) as pool:  # deterministic counts: running two at once changes nothing
        results = dict(pool.map(one, entries))
    ratios = {
        f"ours/{name} ({mode})": {
            key: results[f"ours/{mode}"][key] / results[f"{name}/{mode}"][key]
            for key in ("seq_per_call", "conc_per_call")
        }
        for mode in MODES
        for name in names
        if name != "ours"
        and "error" not in results[f"{name}/{mode}"]
        and "error" not in results[f"ours/{mode}"]
    }
    rows = [
        [key, r.get("seq_per_call", float("nan")), r.get("conc_per_call", float("nan")), r.get("error", "")]
        for key, r in results.items()
    ]
    print(
        _bench.table(
            f"\nInstructions per call (callgrind, {calls} calls each)",
            ["peer", "sequential", "concurrent", ""],
            rows,
        )
    )
    rows = [[pair, r["seq_per_call"], r["conc_per_call"]] for pair, r in ratios.items()]
    print(_bench.table("\nours ÷ peer, instructions", ["pair", "sequential", "concurrent"], rows))
    return {"calls": calls, "per_call": results, "ratios": ratios, "counter": _instructions.describe()}


def main() -> None:
    cli = _bench.parser(__doc__.splitlines()[0] if __doc__ else "peers")
    cli.add_argument("--rounds", type=int, default=5)
    cli.add_argument(
        "--peers", default="ours,bare,pyai,oai,lc,pf311", help="comma-separated; ours is always run"
    )
    cli.add_argument("--seq", type=int, default=200, help="sequential calls per process")
    cli.add_argument(
        "--instructions",
        type=int,
        metavar="CALLS",
        default=0,
        help="also count the client's instructions per call under callgrind (CALLS calls per workload)",
    )
    args = cli.parse_args()
    known = peers()
    names = ["ours", *(n for n in args.peers.split(",") if n and n != "ours")]
    if args.quick:
        names, args.rounds = ["ours"], 1
    unknown = set(names) - set(known)
    if unknown:
        cli.error(f"unknown peers {sorted(unknown)}; known: {sorted(known)}")
    VENVS.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(3) as pool:
        failed = dict(zip(names, pool.map(lambda n: build(n, known[n]), names), strict=True))
    for name, error in failed.items():
        if error:
            print(f"[venv] {name} left out: {error}", flush=True)
    names = [n for n in names if not failed[n]]
    extra = ["--seq", "20", "--conc", "40", "--reps", "1"] if args.quick else ["--seq", str(args.seq)]

    entries = [(name, mode) for mode in MODES for name in names]
    load_before = os.getloadavg()
    rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(args.rounds):
        shift = r * max(1, len(entries) // args.rounds) % len(entries)
        order = entries[shift:] + entries[:shift]
        order = order[::-1] if r % 2 else order  # nobody always follows the same neighbour
        got: dict[str, dict[str, Any]] = {}
        for name, mode in order:
            result = run_one(name, known[name], mode, extra)
            result["load_1m"] = round(os.getloadavg()[0], 2)
            got[f"{name}/{mode}"] = result
            brief = result.get("error") or f"cpu {figure(result, 'cpu_us'):.0f} µs/call"
            print(f"[round {r + 1}/{args.rounds}] {name}/{mode}: {brief}", flush=True)
        rounds.append(got)

    summary = summarise(rounds, names)
    report(summary, names)
    if args.instructions and _instructions.available():
        summary["instructions"] = count_instructions(names, known, args.instructions)
    found = targets(summary, names)
    for target, verdict in found.items():
        print(
            f"{target}: {json.dumps({k: v for k, v in verdict.items() if k != 'met'})} → {_bench.verdict(verdict['met'])}"
        )
    _bench.write_json(
        "peers",
        {
            "rounds": args.rounds,
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "labels": {n: known[n].label for n in names},
            "versions": {n: versions(n, known[n]) for n in names},
            "left_out": {n: e for n, e in failed.items() if e},
            **summary,
            "targets": found,
            "raw": rounds,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
