"""Parameter values on the wire, as the OpenAPI 3.0/3.1 serialisation rules say ("Style Values" and
"Style Examples" of the Parameter Object): ``style`` × ``explode`` for path (simple, label, matrix), query (form,
spaceDelimited, pipeDelimited, deepObject), header (simple) and cookie (form); booleans as ``true``/``false``;
``allowReserved``. ``deepObject`` nests (``filter[created][gte]=1``, arrays as ``items[0][price]=p``), the
bracket syntax Stripe and Twilio read, since the specification defines only one level.

Path values are percent-encoded whole (``/`` too), and a value that is or would make a ``.``/``..`` segment is
refused: a path cannot leave its operation's template. Header and cookie values with CR, LF, NUL or characters
outside Latin-1 are refused before anything is sent.

fastmcp's request director (``fastmcp.utilities.openapi.director.RequestDirector``) covers form, the delimited
styles and one-level deepObject for queries and simple for paths and headers, but not label, matrix, nested
deepObject, cookie styles or ``allowReserved``; it builds ``httpx2`` requests (another HTTP stack than this
transport's pooled ``httpx`` client). Its rule of refusing dot segments at every decoding layer is the one
applied here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import quote, unquote

from penguiflow.tools.transports.http.operations import Param

__all__ = [
    "ArgumentError",
    "cookie_value",
    "encode_query",
    "header_value",
    "path_value",
    "query_pairs",
    "scalar",
]

_UNRESERVED_QUERY: Final = "-._~"
# The characters quote() never encodes whatever ``safe`` says (urllib.parse's _ALWAYS_SAFE)
_ALWAYS_SAFE: Final = re.compile(r"[A-Za-z0-9_.~-]*")
# allowReserved keeps RFC 3986 reserved characters literal, except those that would end the value or the pair.
_RESERVED_KEPT: Final = ":/?[]@!$'()*,;"


class ArgumentError(ValueError):
    """An argument that cannot be sent as the document says; the transport makes it a ToolValidationError."""


def scalar(value: Any) -> str:
    """A primitive as text on the wire: ``true``/``false``, numbers as JSON writes them, ``null`` empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ArgumentError("a number that is not finite cannot be sent")
        return json.dumps(value)
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _pairs_of(value: Any) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in value.items()] if isinstance(value, dict) else []


# --- path --------------------------------------------------------------------------------------------------


def path_value(param: Param, value: Any) -> str:
    """The text that replaces ``{name}`` in the path template (simple, label or matrix)."""
    argument, style, explode = param.argument, param.style, param.explode
    # the parameter's own name appears only in the matrix style: quoted once, and only then
    prefix = f";{quote(param.name, safe='')}=" if style == "matrix" else ""
    if param.json_content:
        return _segment(argument, json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    if isinstance(value, list):
        items = [_segment(argument, v) for v in value]
        if style == "label":
            return "." + ("." if explode else ",").join(items)
        if style == "matrix":
            return "".join(prefix + i for i in items) if explode else prefix + ",".join(items)
        return ",".join(items)
    if isinstance(value, dict):
        pairs = [(_segment(argument, k), _segment(argument, v)) for k, v in _pairs_of(value)]
        if explode:
            joined = [f"{k}={v}" for k, v in pairs]
            if style == "label":
                return "." + ".".join(joined)
            if style == "matrix":
                return "".join(f";{j}" for j in joined)
            return ",".join(joined)
        flat = ",".join(f"{k},{v}" for k, v in pairs)
        if style == "label":
            return "." + flat
        return prefix + flat
    text = _segment(argument, value)
    if style == "label":
        return "." + text
    return prefix + text


def _segment(argument: str, item: Any) -> str:
    """One value of a path parameter, percent-encoded whole; a dot segment refused."""
    text = scalar(item)
    _refuse_dot_segment(argument, text)
    if _ALWAYS_SAFE.fullmatch(text):
        return text  # what quote() would return, without its two Python calls
    return quote(text, safe="")


def _refuse_dot_segment(argument: str, text: str) -> None:
    if "." not in text and "%" not in text:
        return  # no part is a dot segment, and decoding changes nothing: the walk below would say so
    decoded = text
    for _ in range(8):  # a value encoded several times over still cannot become a dot segment
        if any(part in (".", "..") for part in decoded.replace("\\", "/").split("/")):
            raise ArgumentError(
                f"path argument {argument!r} may not be '.' or '..' (a path outside the operation)"
            )
        more = unquote(decoded)
        if more == decoded:
            return
        decoded = more
    raise ArgumentError(f"path argument {argument!r} is percent-encoded too many times over")


# --- query ---------------------------------------------------------------------------------------------------


def query_pairs(param: Param, value: Any) -> Iterator[tuple[str, str, bool]]:
    """``(name, value, keep_reserved)`` pairs of one query parameter, not yet percent-encoded."""
    name, style, explode, keep = param.name, param.style, param.explode, param.allow_reserved
    if param.json_content:
        yield name, json.dumps(value, separators=(",", ":"), ensure_ascii=False), keep
        return
    if style == "deepObject":
        yield from ((k, v, keep) for k, v in deep_pairs(name, value))
        return
    delimiter = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(style, ",")
    if isinstance(value, list):
        if explode:
            yield from ((name, scalar(v), keep) for v in value)
        elif value:
            yield name, delimiter.join(scalar(v) for v in value), keep
        return
    if isinstance(value, dict):
        if explode:
            yield from ((k, scalar(v), keep) for k, v in _pairs_of(value))
        elif value:
            yield name, delimiter.join(f"{k}{delimiter}{scalar(v)}" for k, v in _pairs_of(value)), keep
        return
    yield name, scalar(value), keep


def deep_pairs(name: str, value: Any) -> Iterator[tuple[str, str]]:
    """``name[key][sub]=v`` pairs of a nested value; list items are indexed (``items[0][price]``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from deep_pairs(f"{name}[{key}]", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from deep_pairs(f"{name}[{index}]", item)
    else:
        yield name, scalar(value)


def encode_query(pairs: list[tuple[str, str, bool]]) -> str:
    """A query string (``%20`` for a space, as the delimited styles want); ``allowReserved`` values keep the
    reserved characters that do not end a pair literal."""
    return "&".join(
        f"{quote(key, safe=_UNRESERVED_QUERY)}={quote(value, safe=_RESERVED_KEPT if keep else _UNRESERVED_QUERY)}"
        for key, value, keep in pairs
    )


# --- headers and cookies -----------------------------------------------------------------------------------


def header_value(name: str, value: Any, explode: bool = False, *, json_content: bool = False) -> str:
    """A header parameter in the simple style; CR, LF, NUL and non-Latin-1 characters are refused."""
    if json_content:
        text = json.dumps(value, separators=(",", ":"))
    elif isinstance(value, list):
        text = ",".join(scalar(v) for v in value)
    elif isinstance(value, dict):
        sep = "=" if explode else ","
        text = ",".join(f"{k}{sep}{scalar(v)}" for k, v in _pairs_of(value))
    else:
        text = scalar(value)
    check_header(name, text)
    return text


def check_header(name: str, text: str) -> None:
    if any(c in text for c in "\r\n\x00"):
        raise ArgumentError(f"header argument {name!r} contains a line break or NUL (header injection)")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise ArgumentError(
            f"header argument {name!r} has characters a header cannot carry (not Latin-1)"
        ) from None


def cookie_value(param: Param, value: Any) -> list[tuple[str, str]]:
    """``(name, value)`` cookie pairs (form style: arrays and objects comma-joined unless exploded)."""
    if isinstance(value, list):
        pairs = (
            [(param.name, scalar(v)) for v in value]
            if param.explode
            else [(param.name, ",".join(scalar(v) for v in value))]
        )
    elif isinstance(value, dict):
        pairs = (
            [(k, scalar(v)) for k, v in _pairs_of(value)]
            if param.explode
            else [(param.name, ",".join(f"{k},{scalar(v)}" for k, v in _pairs_of(value)))]
        )
    else:
        pairs = [(param.name, scalar(value))]
    for key, text in pairs:
        check_header(param.argument, text)
        if any(c in text for c in ";") or any(c in key for c in ";="):
            raise ArgumentError(f"cookie argument {param.argument!r} contains ';' (cookie injection)")
    return pairs
