"""What the demo's agent does, hop by hop: the tool calls a scripted LLM asks for.

Three kinds of query run side by side in every round, against one planner (so they share its Level 1 limit):

- ``triage`` — the user guide's example scenario: each hop fans out 30 calls to GitHub (limit 10), 15 to
  Stripe (limit 5) and 5 to native tools. GitHub and Stripe queue at Level 3; Stripe answers 429 with
  Retry-After above 4 concurrent requests and 503 now and then, so it retries with back-off.
- ``audit`` — ``planning_hints={"max_parallel": 5}``: Level 2 holds it to 5 calls at once; its slow report
  calls trip the reports source's 1 s timeout.
- ``followup`` — 20 more GitHub calls and 40 slow native ``local.crunch`` calls per hop, no hints.
- ``burst`` — 10 export calls at once against a source with ``max_concurrency=2, max_queue=4``: the queue
  fills and the rest are rejected at once.

Beside the planner, a steady stream of lookups (``LOOKUP_CALLERS`` callers, back to back) goes to the
"inventory" source, whose limit is adaptive (ceiling ``INVENTORY_CEILING``): its backend serves
``INVENTORY_CAPACITY[0]`` calls at once, then a third into the run only ``[1]``, then ``[2]`` again, and the
limit follows it.

Together they ask for about 125 calls at once, more than ``absolute_max_parallel=50``: the Level 1 ceiling
shows too. Level 1 counts running calls only (a call waiting for its source holds no planner slot), so it is the
native crunching, which no source limits, that fills the planner's 50 and queues behind it. Each kind of query
runs as a named flow (``planner.run(..., flow=kind)``, as tenants would), so the planner's fair Level 1 shows its
queue depth and wait per flow.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

ABSOLUTE_MAX_PARALLEL = 50
GITHUB_LIMIT = 10
GITHUB_DELAY_S = 0.25  # each github tool call takes this long on the MCP server
STRIPE_LIMIT = 5
STRIPE_RATE_LIMIT = 4  # the HTTP API answers 429 above this many concurrent rate_limited requests
REPORTS_LIMIT = 2
REPORTS_TIMEOUT_S = 1.0
EXPORTS_LIMIT = 2
EXPORTS_QUEUE = 4
AUDIT_MAX_PARALLEL = 5
INVENTORY_CEILING = 50
INVENTORY_CAPACITY = (8, 3, 8)  # the backend's hidden capacity in each third of the run
INVENTORY_SERVICE_S = 0.1
LOOKUP_CALLERS = 24

ToolCall = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Query:
    """One planner run: its text, hints, and the calls of each hop (then a final answer)."""

    kind: str
    text: str
    hops: tuple[tuple[ToolCall, ...], ...]
    planning_hints: dict[str, Any] | None = None

    @property
    def answer(self) -> str:
        calls = sum(len(hop) for hop in self.hops)
        return f"{self.kind}: done after {len(self.hops)} hop(s) and {calls} tool call(s)"


GITHUB_TOOLS = ("search_code", "list_repos", "get_user", "create_issue")


def github_call(rng: random.Random, i: int) -> ToolCall:
    tool = GITHUB_TOOLS[i % len(GITHUB_TOOLS)]
    arguments: dict[str, Any]
    if tool == "search_code":
        arguments = {"query": rng.choice(["retry", "semaphore", "timeout", "otel"])}
    elif tool == "list_repos":
        arguments = {"org": rng.choice(["penguiflow", "acme"])}
    elif tool == "get_user":
        arguments = {"username": f"user{rng.randint(1, 99)}"}
    else:
        arguments = {"repo": "penguiflow/demo", "title": f"issue {rng.randint(1, 9999)}"}
    return f"github.{tool}", arguments


def stripe_call(rng: random.Random, i: int, key: str) -> ToolCall:
    # Mostly the rate-limited endpoint (429 + Retry-After above 4 at once); every fifth call is flaky (one 503).
    if i % 5 == 4:
        return "stripe.flaky", {"key": f"{key}-{i}", "failures": 1}
    return "stripe.rate_limited", {"ms": rng.randint(80, 200)}


def native_call(i: int) -> ToolCall:
    if i % 2:
        return "local.classify", {"text": f"ticket {i}"}
    return "local.summarize", {"text": f"findings of batch {i}", "max_words": 8}


def triage(rng: random.Random, round_no: int, hops: int = 3) -> Query:
    calls = []
    for hop in range(hops):
        key = f"r{round_no}h{hop}"
        calls.append(
            tuple(github_call(rng, i) for i in range(30))
            + tuple(stripe_call(rng, i, key) for i in range(15))
            + tuple(native_call(i) for i in range(5))
        )
    return Query("triage", "Triage the open issues and the failed payments of this week.", tuple(calls))


def audit(rng: random.Random, hops: int = 2) -> Query:
    calls = []
    for _hop in range(hops):
        hop_calls: list[ToolCall] = [github_call(rng, i) for i in range(4)]
        # two finish, two run past the reports source's 1 s timeout (and again on their retry)
        hop_calls += [("reports.slow", {"ms": ms}) for ms in (1500, 300, 1600, 600)]
        hop_calls += [native_call(i) for i in range(2)]
        calls.append(tuple(hop_calls))
    return Query(
        "audit",
        "Audit last month's reports, one careful step at a time.",
        tuple(calls),
        planning_hints={"max_parallel": AUDIT_MAX_PARALLEL},
    )


def burst() -> Query:
    return Query(
        "burst",
        "Export all ten dashboards now.",
        (tuple(("exports.slow", {"ms": 400}) for _ in range(10)),),
    )


CRUNCH_CALLS = 40  # native calls per followup hop: with the sources' 19 slots, more than Level 1's 50


def followup(rng: random.Random, hops: int = 2) -> Query:
    return Query(
        "followup",
        "Follow up on every issue mentioned in yesterday's incidents.",
        tuple(
            tuple(github_call(rng, i) for i in range(20))
            + tuple(("local.crunch", {"batch": i}) for i in range(CRUNCH_CALLS))
            for _hop in range(hops)
        ),
    )


def round_queries(rng: random.Random, round_no: int) -> list[Query]:
    return [triage(rng, round_no), followup(rng), audit(rng), burst()]
