"""Every span, span-event, metric and attribute name the plug-in layers emit, declared once.

They are recorded under penguiflow's instrumentation scope (through :func:`penguiflow.telemetry.get_meter` and
:func:`penguiflow.telemetry.get_tracer`) next to the core names, and follow the same vocabulary: a limiter is
labelled ``penguiflow.limiter.name`` as in the core, waits are histograms in seconds, rejections are counters
with a ``penguiflow.reject.reason``. ``METRICS`` is the table documented in ``middleware/README.md``.
"""

from __future__ import annotations

from typing import Final, Literal

from penguiflow.telemetry import names as core_names

# --- attributes -----------------------------------------------------------------------------------------------
# The same keys as the core's limiter metrics, so one dashboard variable selects core and plug-in limiters alike.
LIMITER_NAME: Final = "penguiflow.limiter.name"
LIMITER_WAITED: Final = "penguiflow.limiter.waited"
LIMITER_LIMIT: Final = "penguiflow.limiter.limit"  # span attribute: the limit a waiting call queued behind
REJECT_REASON: Final = "penguiflow.reject.reason"
# ours
CIRCUIT_NAME: Final = "penguiflow.circuit.name"
CIRCUIT_STATE: Final = "penguiflow.circuit.state"
CIRCUIT_FROM_STATE: Final = "penguiflow.circuit.from_state"
RATE_LIMIT_KEY: Final = "penguiflow.rate_limit.key"
REDIS_ACTION: Final = "penguiflow.redis.action"  # what a limiter did when Redis failed: fail | local
REDIS_OPERATION: Final = "penguiflow.redis.operation"  # acquire | poll | release | renew | reserve
ERROR_TYPE: Final = "error.type"

# --- span names and events -----------------------------------------------------------------------------------
SPAN_RATE_LIMIT_WAIT: Final = "rate_limit_wait {limiter}"
SPAN_REDIS_WAIT: Final = "redis_limit_wait {limiter}"
EVENT_CIRCUIT_TRANSITION: Final = "penguiflow.circuit.transition"
EVENT_CIRCUIT_REJECTED: Final = "penguiflow.circuit.rejected"
EVENT_RATE_LIMIT_REJECTED: Final = "penguiflow.rate_limit.rejected"
EVENT_REDIS_UNAVAILABLE: Final = "penguiflow.redis.unavailable"

# --- metric names ----------------------------------------------------------------------------------------------
CIRCUIT_STATE_GAUGE: Final = "penguiflow.circuit.state"
CIRCUIT_TRANSITIONS: Final = "penguiflow.circuit.transitions"
CIRCUIT_REJECTED: Final = "penguiflow.circuit.rejected"
RATE_LIMIT_TOKENS: Final = "penguiflow.rate_limit.tokens"
RATE_LIMIT_QUEUED: Final = "penguiflow.rate_limit.queued"
RATE_LIMIT_WAIT: Final = "penguiflow.rate_limit.wait.duration"
RATE_LIMIT_REJECTED: Final = "penguiflow.rate_limit.rejected"
REDIS_WAIT: Final = "penguiflow.redis_limit.wait.duration"
REDIS_UNAVAILABLE: Final = "penguiflow.redis_limit.unavailable"
REDIS_DEGRADED: Final = "penguiflow.redis_limit.degraded"
REDIS_ROUND_TRIPS: Final = "penguiflow.redis_limit.round_trips"
REDIS_LEASE_LOST: Final = "penguiflow.redis_limit.lease_lost"

# Circuit states, and the numbers the state gauge reports for them (ordered by severity, for graphs).
CircuitStateName = Literal["closed", "half_open", "open"]
CIRCUIT_STATE_VALUES: Final[dict[str, int]] = {"closed": 0, "half_open": 1, "open": 2}

# The core's row type: a plug-in's metric table reads like the core's (and gains ``prometheus_name``).
MetricSpec = core_names.MetricSpec


METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec(
        CIRCUIT_STATE_GAUGE,
        "gauge",
        "{state}",
        "Circuit state now: 0 closed, 1 half_open, 2 open.",
        (CIRCUIT_NAME,),
    ),
    MetricSpec(
        CIRCUIT_TRANSITIONS,
        "counter",
        "{transition}",
        "State changes of the circuit.",
        (CIRCUIT_NAME, CIRCUIT_FROM_STATE, CIRCUIT_STATE),
    ),
    MetricSpec(
        CIRCUIT_REJECTED,
        "counter",
        "{call}",
        "Calls refused without running because the circuit was open (or half-open and busy).",
        (CIRCUIT_NAME, CIRCUIT_STATE),
    ),
    MetricSpec(
        RATE_LIMIT_TOKENS,
        "gauge",
        "{token}",
        "Tokens in the local bucket now (refilled to the moment of collection).",
        (LIMITER_NAME, RATE_LIMIT_KEY),
    ),
    MetricSpec(
        RATE_LIMIT_QUEUED, "gauge", "{call}", "Calls waiting for a token now.", (LIMITER_NAME, RATE_LIMIT_KEY)
    ),
    MetricSpec(
        RATE_LIMIT_WAIT,
        "histogram",
        "s",
        "Time from arriving at the rate limiter to holding a token (0 if none); local and Redis.",
        (LIMITER_NAME, LIMITER_WAITED),
    ),
    MetricSpec(
        RATE_LIMIT_REJECTED,
        "counter",
        "{call}",
        "Calls refused at once because their wait would exceed max_wait_s.",
        (LIMITER_NAME, REJECT_REASON),
    ),
    MetricSpec(
        REDIS_WAIT,
        "histogram",
        "s",
        "Time from arriving at a Redis concurrency limit to holding a slot (0 if none).",
        (LIMITER_NAME, LIMITER_WAITED),
    ),
    MetricSpec(
        REDIS_UNAVAILABLE,
        "counter",
        "{call}",
        "Calls for which Redis could not be used, by what the limiter did (fail closed or local fallback).",
        (LIMITER_NAME, REDIS_ACTION, REDIS_OPERATION, ERROR_TYPE),
    ),
    MetricSpec(
        REDIS_DEGRADED,
        "gauge",
        "{state}",
        "1 while the limiter considers Redis down (cool-down after an error), else 0.",
        (LIMITER_NAME,),
    ),
    MetricSpec(
        REDIS_ROUND_TRIPS,
        "counter",
        "{request}",
        "Requests sent to Redis by the limiter, by operation.",
        (LIMITER_NAME, REDIS_OPERATION),
    ),
    MetricSpec(
        REDIS_LEASE_LOST,
        "counter",
        "{call}",
        "Running calls whose slot lease expired before renewal (the slot may have been given away).",
        (LIMITER_NAME,),
    ),
)
