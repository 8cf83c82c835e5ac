"""Local backends the demo, the tests and the benchmarks run against (all on 127.0.0.1, port 0)."""

from penguiflow.demo.backends.http_api import HttpApiServer, ServerStats, openapi_document

__all__ = ["HttpApiServer", "ServerStats", "openapi_document"]
