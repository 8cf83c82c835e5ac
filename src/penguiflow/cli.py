"""The ``penguiflow`` command line. One sub-command for now: ``penguiflow demo``.

penguiflow demo                         # ~20 s offline workload, live view, summary
penguiflow demo --metrics-port 9464     # + a Prometheus scrape endpoint
penguiflow demo --otlp                  # + traces and metrics over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)
penguiflow demo --llm gpt-4o-mini       # a real OpenAI-compatible LLM plans instead of the script
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Sequence

from penguiflow import __version__


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, got {value!r}")
    return number


def _positive(value: str) -> float:
    number = _number(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _non_negative(value: str) -> float:
    number = _number(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number from 0 to 65535 (0 = any free port), got {value!r}"
        )
    return port


def _url(value: str) -> str:
    if value == "":
        return value  # --otlp with no value: the environment's endpoint or the default
    from penguiflow.errors import ConfigurationError
    from penguiflow.telemetry.export import check_endpoint

    try:
        return check_endpoint(value, "--otlp")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--otlp: ")) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="penguiflow", description="penguiflow command line")
    parser.add_argument("--version", action="version", version=f"penguiflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the offline demo workload",
        description="An offline agent workload against local backends (a stdio MCP server, a rate-limited HTTP "
        "API, slow and flaky endpoints, native tools) that makes penguiflow's three concurrency levels, its "
        "retries and timeouts visible, live in the terminal and in the exported telemetry.",
    )
    demo.add_argument("--duration", type=_positive, default=20.0, help="seconds of workload (default: 20)")
    demo.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on 127.0.0.1:PORT/metrics (0 = any free port)",
    )
    demo.add_argument(
        "--otlp",
        nargs="?",
        const="",
        default=None,
        type=_url,
        metavar="ENDPOINT",
        help="export traces and metrics over OTLP/HTTP (to ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT, "
        "else http://localhost:4318); also on when OTEL_EXPORTER_OTLP_ENDPOINT is set",
    )
    demo.add_argument("--console", action="store_true", help="print every span to stdout")
    demo.add_argument(
        "--llm",
        default=None,
        metavar="MODEL",
        help="plan with a real OpenAI-compatible model (needs OPENAI_API_KEY; OPENAI_BASE_URL optional) "
        "instead of the scripted one",
    )
    demo.add_argument(
        "--hold",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="keep the metrics endpoint up this long after the workload (for a scraper to catch up)",
    )
    demo.add_argument("--service-name", default="penguiflow-demo", help="service.name of the telemetry")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the workload (default: 7)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    return 2  # pragma: no cover - argparse enforces the sub-command


def _demo(args: argparse.Namespace) -> int:
    import logging

    from penguiflow.errors import ConfigurationError, MissingExtraError

    # The demo is an application: its warnings (an unreachable collector, say) go to stderr, one line each.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    try:
        from penguiflow.demo.app import DemoOptions, run_demo
    except ModuleNotFoundError as exc:
        return _fail(MissingExtraError("penguiflow demo", "demo", exc.name))
    if args.llm and not os.environ.get("OPENAI_API_KEY"):
        return _fail("penguiflow demo --llm needs OPENAI_API_KEY in the environment")
    options = DemoOptions(
        duration=args.duration,
        metrics_port=args.metrics_port,
        otlp=args.otlp,
        console=args.console,
        llm=args.llm,
        hold=args.hold,
        service_name=args.service_name,
        seed=args.seed,
    )
    try:
        return asyncio.run(run_demo(options))
    except KeyboardInterrupt:
        return 130
    except (ConfigurationError, MissingExtraError) as exc:
        # A busy --metrics-port, a bad OTEL_EXPORTER_OTLP_ENDPOINT, an exporter package missing: one line.
        return _fail(exc)


def _fail(message: object) -> int:
    print(f"penguiflow: error: {message}", file=sys.stderr)
    return 2
