"""The HTTP transport: the tools of an HTTP API, discovered from its OpenAPI 3.0/3.1 document (JSON or YAML).

One module per idea: :mod:`.document` (reading the document off the event loop), :mod:`.schemas` (argument
schemas, built on fastmcp's OpenAPI → JSON Schema converter), :mod:`.operations` (operations → tools, bodies by
media type), :mod:`.serialize` (parameter styles), :mod:`.bodies` (JSON, form, multipart, raw bodies),
:mod:`.auth` (``securitySchemes``, origins), :mod:`.responses` (bounded reads, results, status errors),
:mod:`.logs` (httpx's log lines) and :mod:`.transport` (``HttpTransport``).

What is fastmcp's and what is ours (measured against Stripe 2023-08-16 and GitHub REST, see
docs/benchmarks.md): fastmcp's JSON-schema converter is used as it is (``nullable``, exclusive bounds,
``readOnly``); its parser (3.1 s on Stripe, failures logged and dropped, first media type only) and its request
director (no label/matrix/cookie styles, no nested ``deepObject``, form bodies that ignore the Encoding Object's
``style`` — Stripe's ``metadata`` goes out as JSON text — and ``httpx2`` requests) are not.
"""

from penguiflow.tools.transports.http.discovery import parse_openapi
from penguiflow.tools.transports.http.document import OpenAPIError, load_document
from penguiflow.tools.transports.http.operations import Body, Operation, Param
from penguiflow.tools.transports.http.transport import MAX_REDIRECTS, HttpTransport

__all__ = [
    "MAX_REDIRECTS",
    "Body",
    "HttpTransport",
    "OpenAPIError",
    "Operation",
    "Param",
    "load_document",
    "parse_openapi",
]
