"""Every span, metric and attribute name penguiflow emits, declared once.

Where the OpenTelemetry GenAI conventions have a name we use it (``execute_tool {tool}``,
``gen_ai.execute_tool.duration``, ``gen_ai.tool.name`` …); the conventions define no limiter, retry or
timeout signals, so those are ours under ``penguiflow.*``. ``METRICS`` is the table that ``docs/telemetry.md``
and the Grafana dashboards are generated from, so a name cannot drift between code, docs and dashboards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# --- instrumentation scope ---------------------------------------------------------------------------------
SCOPE: Final = "penguiflow"

# --- span names (format with str.format) ---------------------------------------------------------------------
SPAN_EXECUTE_TOOL: Final = "execute_tool {tool}"
SPAN_ATTEMPT: Final = "attempt {tool}"
SPAN_INVOKE_AGENT: Final = "invoke_agent {agent}"
SPAN_CHAT: Final = "chat {model}"
SPAN_CONNECT: Final = "connect {source}"

# --- span events ---------------------------------------------------------------------------------------------
EVENT_BACKOFF: Final = "penguiflow.retry.backoff"
EVENT_TIMEOUT: Final = "penguiflow.timeout"
EVENT_QUEUE_WAIT: Final = "penguiflow.limiter.queue_wait"
EVENT_REJECTED: Final = "penguiflow.limiter.rejected"
EVENT_LIMIT_CHANGED: Final = "penguiflow.limiter.limit_changed"
EVENT_MCP_PROGRESS: Final = "penguiflow.mcp.progress"
EVENT_MCP_LOG: Final = "penguiflow.mcp.log"

# --- attributes ----------------------------------------------------------------------------------------------
# OpenTelemetry semantic conventions (GenAI, error, HTTP)
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
ERROR_TYPE: Final = "error.type"
HTTP_RESEND_COUNT: Final = "http.request.resend_count"
HTTP_STATUS_CODE: Final = "http.response.status_code"
# OpenTelemetry MCP conventions (on our execute_tool / connect spans: the SDK's own spans are kept out)
MCP_METHOD_NAME: Final = "mcp.method.name"
MCP_SESSION_ID: Final = "mcp.session.id"
MCP_PROTOCOL_VERSION: Final = "mcp.protocol.version"
MCP_RESOURCE_URI: Final = "mcp.resource.uri"
GEN_AI_PROMPT_NAME: Final = "gen_ai.prompt.name"
JSONRPC_REQUEST_ID: Final = "jsonrpc.request.id"
NETWORK_TRANSPORT: Final = "network.transport"
NETWORK_PROTOCOL_NAME: Final = "network.protocol.name"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
# ours
TOOL_SOURCE: Final = "penguiflow.tool.source"
TOOL_TRANSPORT: Final = "penguiflow.tool.transport"
TOOLS_DISCOVERED: Final = "penguiflow.tools.discovered"
OUTCOME: Final = "penguiflow.outcome"
LIMITER_NAME: Final = "penguiflow.limiter.name"
LIMITER_FLOW: Final = "penguiflow.limiter.flow"
# OpenTelemetry's own mark of an aggregate of the series beyond a cardinality limit (the metrics SDK spec's
# overflow attribute): here, the named flows beyond a limiter's ``flow_labels``.
OTEL_METRIC_OVERFLOW: Final = "otel.metric.overflow"
ATTEMPT: Final = "penguiflow.attempt"
RETRY_REASON: Final = "penguiflow.retry.reason"
RETRY_WAIT_S: Final = "penguiflow.retry.wait_s"
TIMEOUT_S: Final = "penguiflow.timeout_s"
REJECT_REASON: Final = "penguiflow.reject.reason"
PLANNER_STOP_REASON: Final = "penguiflow.planner.reason"
MCP_PROGRESS: Final = "penguiflow.mcp.progress"
MCP_PROGRESS_TOTAL: Final = "penguiflow.mcp.progress.total"
MCP_PROGRESS_MESSAGE: Final = "penguiflow.mcp.progress.message"
MCP_LOG_LEVEL: Final = "penguiflow.mcp.log.level"
MCP_LOG_LOGGER: Final = "penguiflow.mcp.log.logger"
MCP_LOG_DATA: Final = "penguiflow.mcp.log.data"
# on a queue_wait event: the seconds waited, the queue depth (this call included) and the limit when the call
# joined the queue
LIMITER_WAIT_S: Final = "penguiflow.limiter.wait_s"
LIMITER_QUEUED_AT_ARRIVAL: Final = "penguiflow.limiter.queued"
LIMITER_LIMIT_AT_ARRIVAL: Final = "penguiflow.limiter.limit"
# on a limit_changed event (and, the reason, on the adjustments counter): what an adaptive limit did and why
LIMIT_REASON: Final = "penguiflow.limiter.reason"
LIMIT_PREVIOUS: Final = "penguiflow.limiter.limit.previous"
LIMIT_NEW: Final = "penguiflow.limiter.limit.new"
LIMIT_RTT_S: Final = "penguiflow.limiter.rtt_s"
LIMIT_BASELINE_S: Final = "penguiflow.limiter.baseline_s"

OPERATION_EXECUTE_TOOL: Final = "execute_tool"
OPERATION_INVOKE_AGENT: Final = "invoke_agent"
OPERATION_CHAT: Final = "chat"

# Outcome values of one tool call; every call ends in exactly one of them.
Outcome = Literal["success", "error", "timeout", "rejected", "cancelled"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("success", "error", "timeout", "rejected", "cancelled")

# --- metric names --------------------------------------------------------------------------------------------
TOOL_DURATION: Final = "gen_ai.execute_tool.duration"
LIMITER_IN_FLIGHT: Final = "penguiflow.limiter.in_flight"
LIMITER_QUEUED: Final = "penguiflow.limiter.queued"
LIMITER_FLOW_QUEUED: Final = "penguiflow.limiter.flow_queued"
LIMITER_LIMIT: Final = "penguiflow.limiter.limit"
LIMITER_WAIT: Final = "penguiflow.limiter.wait.duration"
LIMITER_ADMITTED: Final = "penguiflow.limiter.admitted"
LIMITER_REJECTED: Final = "penguiflow.limiter.rejected"
LIMITER_ADJUSTMENTS: Final = "penguiflow.limiter.adjustments"
LIMITER_RTT: Final = "penguiflow.limiter.rtt"
LIMITER_BASELINE_RTT: Final = "penguiflow.limiter.rtt.baseline"
RETRY_ATTEMPTS: Final = "penguiflow.retry.attempts"
TIMEOUTS: Final = "penguiflow.timeouts"
AGENT_DURATION: Final = "gen_ai.invoke_agent.duration"
LLM_DURATION: Final = "gen_ai.client.operation.duration"
LLM_TOKENS: Final = "gen_ai.client.token.usage"
PLANNER_RUNS: Final = "penguiflow.planner.runs"
PLANNER_HOPS: Final = "penguiflow.planner.hops"
PLANNER_FANOUT: Final = "penguiflow.planner.fanout"

# Seconds; the GenAI conventions' advice for durations, extended down to 1 ms for queue waits.
DURATION_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
FANOUT_BUCKETS: Final = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)
TOKEN_BUCKETS: Final = tuple(float(4**i) for i in range(1, 12))

# An observed counter is a monotonic count read on collection (an OpenTelemetry asynchronous counter): a hot
# path adds to a plain int instead of making an SDK record a call.
InstrumentKind = Literal["histogram", "counter", "observed_counter", "gauge"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One row of the metric table."""

    name: str
    kind: InstrumentKind
    unit: str
    description: str
    attributes: tuple[str, ...]
    buckets: tuple[float, ...] | None = None  # histograms only: explicit bucket boundaries

    @property
    def prometheus_name(self) -> str:
        """The name the OpenTelemetry Prometheus exporter gives this metric (without ``_bucket``/``_count``)."""
        base = self.name.replace(".", "_")
        if self.unit == "s":
            base += "_seconds"
        if self.kind in ("counter", "observed_counter"):
            base += "_total"
        return base


_TOOL = (GEN_AI_TOOL_NAME, TOOL_SOURCE)
_LIMITER = (LIMITER_NAME,)

METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec(
        TOOL_DURATION,
        "histogram",
        "s",
        "Duration of one tool call, all attempts and queueing included; its count is the calls by outcome.",
        (*_TOOL, OUTCOME, ERROR_TYPE),
        DURATION_BUCKETS,
    ),
    MetricSpec(
        LIMITER_IN_FLIGHT,
        "gauge",
        "{call}",
        "Calls running through the limiter now (a waiting call holds no slot at any level).",
        _LIMITER,
    ),
    MetricSpec(
        LIMITER_QUEUED,
        "gauge",
        "{call}",
        "Waiting calls this limiter holds up now; each waiting call counts at the one limiter it waits for.",
        _LIMITER,
    ),
    MetricSpec(
        LIMITER_FLOW_QUEUED,
        "gauge",
        "{call}",
        "At a fair (shared) limiter: its queued calls by named flow. Only flows named by a string, at most "
        "the limiter's flow_labels (10) of them, the first seen; the calls of later flows are summed in one "
        "series marked otel.metric.overflow=true instead of a flow. A flow's series reads 0 once its queue "
        "is empty.",
        (*_LIMITER, LIMITER_FLOW, OTEL_METRIC_OVERFLOW),
    ),
    MetricSpec(LIMITER_LIMIT, "gauge", "{call}", "The limiter's current max_concurrency.", _LIMITER),
    MetricSpec(
        LIMITER_WAIT,
        "histogram",
        "s",
        "Time a call waited for this limiter: one sample per call it held up, at each limiter of the "
        "call's path that held it up (a call admitted at once records none; its count is the calls that "
        "waited, the admitted counter's the calls admitted).",
        (*_LIMITER, LIMITER_FLOW, OTEL_METRIC_OVERFLOW),
        DURATION_BUCKETS,
    ),
    MetricSpec(
        LIMITER_ADMITTED,
        "observed_counter",
        "{call}",
        "Calls admitted through the limiter while metrics were on, waited or not (one per limiter of a "
        "call's path); at a fair limiter by named flow, like the wait histogram. Counted in memory and "
        "read on collection.",
        (*_LIMITER, LIMITER_FLOW, OTEL_METRIC_OVERFLOW),
    ),
    MetricSpec(
        LIMITER_REJECTED,
        "counter",
        "{call}",
        "Calls refused at once because the queue was full.",
        (*_LIMITER, REJECT_REASON),
    ),
    MetricSpec(
        LIMITER_ADJUSTMENTS,
        "counter",
        "{change}",
        "Changes of an adaptive limiter's limit, by reason (increase, latency, status_429, timeout …).",
        (*_LIMITER, LIMIT_REASON),
    ),
    MetricSpec(
        LIMITER_RTT,
        "gauge",
        "s",
        "An adaptive limiter's current round-trip estimate (mean of its last window); latency algorithms only.",
        _LIMITER,
    ),
    MetricSpec(
        LIMITER_BASELINE_RTT,
        "gauge",
        "s",
        "An adaptive limiter's baseline: the round trip when nothing queues (lowest recent window RTT).",
        _LIMITER,
    ),
    MetricSpec(
        RETRY_ATTEMPTS,
        "counter",
        "{attempt}",
        "Retries (attempts after the first), by reason.",
        (*_TOOL, RETRY_REASON),
    ),
    MetricSpec(TIMEOUTS, "counter", "{attempt}", "Attempts that ran past their Timeout layer.", _TOOL),
    MetricSpec(
        AGENT_DURATION,
        "histogram",
        "s",
        "Duration of one planner run.",
        (GEN_AI_AGENT_NAME, PLANNER_STOP_REASON),
        DURATION_BUCKETS,
    ),
    MetricSpec(
        PLANNER_RUNS,
        "counter",
        "{run}",
        "Planner runs that ended, by reason.",
        (GEN_AI_AGENT_NAME, PLANNER_STOP_REASON),
    ),
    MetricSpec(
        PLANNER_HOPS,
        "counter",
        "{hop}",
        "Planner hops (one LLM turn and the tool calls it asked for).",
        (GEN_AI_AGENT_NAME,),
    ),
    MetricSpec(
        PLANNER_FANOUT,
        "histogram",
        "{call}",
        "Tool calls issued in one hop.",
        (GEN_AI_AGENT_NAME,),
        FANOUT_BUCKETS,
    ),
    MetricSpec(
        LLM_DURATION,
        "histogram",
        "s",
        "Duration of one LLM call.",
        (GEN_AI_OPERATION_NAME, GEN_AI_REQUEST_MODEL, ERROR_TYPE),
        DURATION_BUCKETS,
    ),
    MetricSpec(
        LLM_TOKENS,
        "histogram",
        "{token}",
        "Tokens per LLM call, as the LLM reported them.",
        (GEN_AI_OPERATION_NAME, GEN_AI_REQUEST_MODEL, GEN_AI_TOKEN_TYPE),
        TOKEN_BUCKETS,
    ),
)


def metric(name: str) -> MetricSpec:
    """The table row of metric ``name``."""
    for spec in METRICS:
        if spec.name == name:
            return spec
    raise KeyError(name)


# --- the documentation table of spans, span events and attributes ----------------------------------------------
NameKind = Literal["span", "span event", "attribute"]


@dataclass(frozen=True, slots=True)
class NameSpec:
    """One row of the name table for what is not a metric: a span, a span event or an attribute."""

    name: str
    kind: NameKind
    description: str
    attributes: tuple[str, ...] = ()
    unit: str = ""


_SPAN_TOOL = (GEN_AI_OPERATION_NAME, GEN_AI_TOOL_NAME, GEN_AI_TOOL_CALL_ID, GEN_AI_TOOL_TYPE, TOOL_SOURCE)

SPANS: Final[tuple[NameSpec, ...]] = (
    NameSpec(
        SPAN_EXECUTE_TOOL,
        "span",
        "One tool call, all attempts and queueing included (kind INTERNAL). On failure also error.type, "
        "penguiflow.outcome and status ERROR (not for a caller's cancellation: outcome cancelled, status "
        "unset). For an MCP source also the MCP conventions' attributes: the client libraries' own spans are "
        "kept out, so this is the call's only client span.",
        (
            *_SPAN_TOOL,
            ERROR_TYPE,
            OUTCOME,
            MCP_METHOD_NAME,
            MCP_SESSION_ID,
            MCP_PROTOCOL_VERSION,
            JSONRPC_REQUEST_ID,
            NETWORK_TRANSPORT,
            NETWORK_PROTOCOL_NAME,
            SERVER_ADDRESS,
            SERVER_PORT,
            MCP_RESOURCE_URI,
            GEN_AI_PROMPT_NAME,
        ),
    ),
    NameSpec(
        SPAN_ATTEMPT,
        "span",
        "Child of execute_tool: one attempt of a retried call; only when there was more than one attempt.",
        (GEN_AI_TOOL_NAME, ATTEMPT, HTTP_RESEND_COUNT, ERROR_TYPE),
    ),
    NameSpec(SPAN_INVOKE_AGENT, "span", "One planner run.", (GEN_AI_OPERATION_NAME, GEN_AI_AGENT_NAME)),
    NameSpec(
        SPAN_CHAT,
        "span",
        "One LLM call of the planner.",
        (GEN_AI_OPERATION_NAME, GEN_AI_REQUEST_MODEL, GEN_AI_PROVIDER_NAME),
    ),
    NameSpec(
        SPAN_CONNECT,
        "span",
        "A ToolNode opening its transport and discovering its tools (connect(), or lazily before the first "
        "call or planner run). On failure also error.type and status ERROR. For MCP also mcp.method.name "
        "(the last request of the handshake), mcp.session.id, mcp.protocol.version and network.transport.",
        (TOOL_SOURCE, TOOL_TRANSPORT, TOOLS_DISCOVERED, ERROR_TYPE, MCP_SESSION_ID, NETWORK_TRANSPORT),
    ),
)

EVENTS: Final[tuple[NameSpec, ...]] = (
    NameSpec(
        EVENT_BACKOFF,
        "span event",
        "On execute_tool: an attempt failed retryably; the call sleeps before the next one.",
        (ATTEMPT, RETRY_REASON, RETRY_WAIT_S),
    ),
    NameSpec(
        EVENT_TIMEOUT,
        "span event",
        "On the current span: an attempt ran past its Timeout layer.",
        (TIMEOUT_S, ATTEMPT),
    ),
    NameSpec(
        EVENT_QUEUE_WAIT,
        "span event",
        "On the waiting call's span (execute_tool, or a retry's attempt): the call waited for admission (one "
        "decision for every level of its path); at the time it was admitted, or its wait was cancelled. Named "
        "limiter: the one that held it up longest (a cancelled wait: the one it queued for first). Only when "
        "it waited.",
        (LIMITER_NAME, LIMITER_WAIT_S, LIMITER_QUEUED_AT_ARRIVAL, LIMITER_LIMIT_AT_ARRIVAL),
    ),
    NameSpec(
        EVENT_REJECTED,
        "span event",
        "On execute_tool: the limiter's queue was full (max_queue), the call was refused.",
        (LIMITER_NAME,),
    ),
    NameSpec(
        EVENT_LIMIT_CHANGED,
        "span event",
        "On the call whose end made an adaptive limiter change its limit: from, to, why, and the estimate's "
        "inputs (RTT and baseline, latency algorithms only). Also logged on penguiflow.middleware.adaptive.",
        (LIMITER_NAME, LIMIT_PREVIOUS, LIMIT_NEW, LIMIT_REASON, LIMIT_RTT_S, LIMIT_BASELINE_S),
    ),
    NameSpec(
        EVENT_MCP_PROGRESS,
        "span event",
        "On the call's span: an MCP progress notification for the call (also a node_progress flow event).",
        (MCP_PROGRESS, MCP_PROGRESS_TOTAL, MCP_PROGRESS_MESSAGE),
    ),
    NameSpec(
        EVENT_MCP_LOG,
        "span event",
        "On the call's span: a log message the MCP server sent while it was the session's only call in flight "
        "(every message is also logged under penguiflow.mcp.<source>). Redacted and shortened.",
        (MCP_LOG_LEVEL, MCP_LOG_LOGGER, MCP_LOG_DATA),
    ),
)

ATTRIBUTES: Final[tuple[NameSpec, ...]] = (
    NameSpec(GEN_AI_OPERATION_NAME, "attribute", "GenAI operation: execute_tool, invoke_agent or chat."),
    NameSpec(GEN_AI_TOOL_NAME, "attribute", "The tool's catalog name (github.create_issue)."),
    NameSpec(GEN_AI_TOOL_CALL_ID, "attribute", "Unique id of one tool call."),
    NameSpec(
        GEN_AI_TOOL_TYPE, "attribute", "function (native or wrapped) or extension (an external source)."
    ),
    NameSpec(GEN_AI_AGENT_NAME, "attribute", "The planner (agent) name."),
    NameSpec(GEN_AI_REQUEST_MODEL, "attribute", "The LLM model asked for."),
    NameSpec(GEN_AI_PROVIDER_NAME, "attribute", "The LLM provider."),
    NameSpec(GEN_AI_TOKEN_TYPE, "attribute", "input or output (token usage histogram)."),
    NameSpec(GEN_AI_USAGE_INPUT_TOKENS, "attribute", "Input tokens of one LLM call.", unit="{token}"),
    NameSpec(GEN_AI_USAGE_OUTPUT_TOKENS, "attribute", "Output tokens of one LLM call.", unit="{token}"),
    NameSpec(ERROR_TYPE, "attribute", "The exception's class name on failure (never its message)."),
    NameSpec(HTTP_RESEND_COUNT, "attribute", "Attempt number - 1 on an attempt span."),
    NameSpec(HTTP_STATUS_CODE, "attribute", "HTTP status of a tool source's response."),
    NameSpec(TOOL_SOURCE, "attribute", "The tool source (ToolNode name); empty for a wrapped function."),
    NameSpec(TOOL_TRANSPORT, "attribute", "On connect: the source's transport, mcp | http | utcp."),
    NameSpec(
        TOOLS_DISCOVERED, "attribute", "On connect: how many tools the source offers (after the filter)."
    ),
    NameSpec(OUTCOME, "attribute", "How a call ended: " + " | ".join(OUTCOMES) + "."),
    NameSpec(LIMITER_NAME, "attribute", "The limiter's name (a tool source, planner, planner.run …)."),
    NameSpec(
        LIMITER_FLOW,
        "attribute",
        "At a fair limiter: the call's named flow (call.flow as a string: a tenant, ReactPlanner.run(flow=...)); "
        "absent for unnamed flows such as a planner run's own. At most the limiter's flow_labels flows are "
        "named (the first seen); later ones are counted under otel.metric.overflow.",
    ),
    NameSpec(
        OTEL_METRIC_OVERFLOW,
        "attribute",
        "true on the one series of a limiter's flow metrics that sums the flows beyond its flow_labels "
        "(OpenTelemetry's overflow attribute); such a series has no penguiflow.limiter.flow.",
    ),
    NameSpec(
        LIMITER_QUEUED_AT_ARRIVAL,
        "attribute",
        "On a queue_wait event: queue depth when the call joined it, itself included.",
        unit="{call}",
    ),
    NameSpec(
        LIMITER_WAIT_S,
        "attribute",
        "On a queue_wait event: the seconds the call waited for admission.",
        unit="s",
    ),
    NameSpec(
        LIMITER_LIMIT_AT_ARRIVAL,
        "attribute",
        "On a queue_wait event: the limit when the call joined the queue.",
    ),
    NameSpec(
        LIMIT_REASON,
        "attribute",
        "Why an adaptive limit changed: increase | latency | status_<code> | timeout | connection.",
    ),
    NameSpec(LIMIT_PREVIOUS, "attribute", "On limit_changed: the limit before.", unit="{call}"),
    NameSpec(LIMIT_NEW, "attribute", "On limit_changed: the limit now.", unit="{call}"),
    NameSpec(LIMIT_RTT_S, "attribute", "On limit_changed: the algorithm's round-trip estimate.", unit="s"),
    NameSpec(LIMIT_BASELINE_S, "attribute", "On limit_changed: the no-queue round trip.", unit="s"),
    NameSpec(ATTEMPT, "attribute", "Attempt number, 1 for the first."),
    NameSpec(
        RETRY_REASON, "attribute", "Why a retry happened: status_<code> | timeout | connection | error."
    ),
    NameSpec(RETRY_WAIT_S, "attribute", "Back-off slept before the next attempt.", unit="s"),
    NameSpec(TIMEOUT_S, "attribute", "The Timeout layer's bound.", unit="s"),
    NameSpec(REJECT_REASON, "attribute", "Why a limiter refused a call: queue_full."),
    NameSpec(PLANNER_STOP_REASON, "attribute", "Why a planner run ended."),
    NameSpec(MCP_METHOD_NAME, "attribute", "MCP request method (tools/call, resources/read, initialize …)."),
    NameSpec(MCP_SESSION_ID, "attribute", "MCP session id (streamable HTTP's Mcp-Session-Id)."),
    NameSpec(MCP_PROTOCOL_VERSION, "attribute", "The MCP protocol version the session negotiated."),
    NameSpec(MCP_RESOURCE_URI, "attribute", "The resource of a resources/read (configured secrets masked)."),
    NameSpec(GEN_AI_PROMPT_NAME, "attribute", "The prompt of a prompts/get."),
    NameSpec(JSONRPC_REQUEST_ID, "attribute", "JSON-RPC id of the request (per attempt)."),
    NameSpec(NETWORK_TRANSPORT, "attribute", "pipe (stdio) or tcp (streamable HTTP)."),
    NameSpec(NETWORK_PROTOCOL_NAME, "attribute", "http for streamable HTTP."),
    NameSpec(SERVER_ADDRESS, "attribute", "Host of an MCP server reached over HTTP."),
    NameSpec(SERVER_PORT, "attribute", "Port of an MCP server reached over HTTP."),
    NameSpec(MCP_PROGRESS, "attribute", "Progress so far, as the server counts it."),
    NameSpec(MCP_PROGRESS_TOTAL, "attribute", "The total the progress counts towards, if the server said."),
    NameSpec(MCP_PROGRESS_MESSAGE, "attribute", "The server's progress message (masked, shortened)."),
    NameSpec(MCP_LOG_LEVEL, "attribute", "MCP log level (debug … emergency)."),
    NameSpec(MCP_LOG_LOGGER, "attribute", "The server's logger name, if it gave one."),
    NameSpec(MCP_LOG_DATA, "attribute", "The log message (masked, shortened)."),
)
