"""What a sandbox handler receives (`Call`) and returns (`Answer`), and how answers are encoded.

Errors follow the real service: HTTP 400/403 with `X-Application-Error-Code` (the
endpoint's code block plus a suffix) and `X-Application-Error-Info`, and a generic HTML
page as the body. Handlers raise `ApiError`, which the app turns into that answer; it is
the sandbox's HTTP control flow, not a `LoaderError`.

Error-code suffixes inside an endpoint's block (`N` is the block, e.g. 2000 for createcase):

| code | status | meaning                                                   | source          |
|------|--------|-----------------------------------------------------------|-----------------|
| N000 | 400    | Invalid HTTP Method.                                      | fact sheet      |
| N002 | 400    | Unable to identify the case / item                        | fact sheet      |
| N003 | 400    | Required parameter X was not supplied.                    | seed 001 (8003) |
| N004 | 400    | Invalid value for X (type, value list, date)              | inferred        |
| N005 | 400    | Already exists (RequestId, account, NewId)                | inferred        |
| N006 | 400    | The request body cannot be read (JSON, CSV, nested, size) | inferred        |
| N021 | 403    | Invalid token                                             | seed 001 (8021) |
| N029 | 429    | Rate limit exceeded                                       | inferred        |
| N099 | 400    | Various (e.g. an unknown Format)                          | fact sheet      |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    from loader.sandbox.store import Store
    from loader.sandbox.tenant import Tenant

INVALID_METHOD = 0
NOT_IDENTIFIED = 2
MISSING = 3
INVALID_VALUE = 4
EXISTS = 5
UNREADABLE = 6
INVALID_TOKEN = 21
RATE_LIMITED = 29
VARIOUS = 99

JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "application/xml; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
CSV_TYPE = "text/csv; charset=utf-8"

_ERROR_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Error</title></head><body>"
    "<h1>An Unexpected Error Occured</h1><p>{detail}</p></body></html>\n"
)


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, before the app adds rate-limit headers."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def error_code(self) -> str | None:
        for name, value in self.headers:
            if name == "X-Application-Error-Code":
                return value
        return None


@dataclass(frozen=True, slots=True)
class Call:
    """A parsed request: `params` merges the query and the body (the body wins)."""

    method: str
    endpoint: str
    block: int  # the endpoint's error-code block, e.g. 2000
    params: dict[str, str]
    format: str  # lower case: "xml" (the default), "json" or "csv"
    body: bytes = field(repr=False)
    content_type: str


class ApiError(Exception):
    """An error answer: status, application code and info, like the real service."""

    def __init__(self, status: int, code: int, info: str, *, detail: str | None = None) -> None:
        super().__init__(f"{status} {code} {info}")
        self.status = status
        self.code = code
        self.info = info
        self.detail = detail or info

    def answer(self, extra: tuple[tuple[str, str], ...] = ()) -> Answer:
        return error_answer(self.status, str(self.code), self.info, self.detail, extra)


def bad_request(block: int, suffix: int, info: str, *, detail: str | None = None) -> ApiError:
    return ApiError(400, block + suffix, info, detail=detail)


def error_answer(
    status: int, code: str | None, info: str | None, detail: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> Answer:  # fmt: skip
    headers = list(extra)
    if code is not None:
        headers.append(("X-Application-Error-Code", code))
    if info is not None:
        # Header values must stay on one line and in latin-1: user values end up here.
        safe = info.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace")
        headers.append(("X-Application-Error-Info", safe.decode("latin-1")))
    body = _ERROR_PAGE.format(detail=escape(detail)).encode()
    return Answer(status, body, HTML_TYPE, tuple(headers))


def render(payload: Mapping[str, Any], fmt: str) -> Answer:
    """A 200 answer with `payload` as JSON or XML (any other format answers XML)."""
    if fmt == "json":
        return Answer(200, json.dumps(payload).encode(), JSON_TYPE)
    return Answer(200, xml_document(payload), XML_TYPE)


def xml_document(payload: Mapping[str, Any], attributes: Mapping[str, str] | None = None) -> bytes:
    """`{"a": {"b": "1"}}` → `<a><b>1</b></a>`; a list repeats the singular of its key."""
    ((root, content),) = payload.items()
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in (attributes or {}).items())
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', f"<{root}{attrs}>"]
    _xml_content(content, root, parts)
    parts.append(f"</{root}>\n")
    return "".join(parts).encode()


def xml_rows(
    root: str, item: str, rows: list[dict[str, str]], attributes: Mapping[str, str]
) -> bytes:
    """`<Rows RequestId="…"><Row>…</Row>…</Rows>`: the shape of getreport and getcasedetails."""
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in attributes.items())
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', f"<{root}{attrs}>\n"]
    for row in rows:
        parts.append(f"<{item}>")
        _xml_content(row, item, parts)
        parts.append(f"</{item}>\n")
    parts.append(f"</{root}>\n")
    return "".join(parts).encode()


def _xml_content(content: Any, tag: str, parts: list[str]) -> None:
    if isinstance(content, Mapping):
        for key, value in content.items():
            name = xml_name(str(key))
            parts.append(f"<{name}>")
            _xml_content(value, name, parts)
            parts.append(f"</{name}>")
    elif isinstance(content, list):
        item = tag[:-1] if tag.endswith("s") and len(tag) > 1 else "item"
        for value in content:
            parts.append(f"<{item}>")
            _xml_content(value, item, parts)
            parts.append(f"</{item}>")
    else:
        parts.append(escape("" if content is None else str(content)))


def xml_name(name: str) -> str:
    """A valid XML element name for a field name (dots are fine; spaces and the like are not)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)
    if not cleaned or not (cleaned[0].isalpha() or cleaned[0] == "_"):
        cleaned = "_" + cleaned
    return cleaned


@dataclass(frozen=True, slots=True)
class Context:
    """What every handler may use: the store (inside the request's transaction) and the tenant."""

    store: Store
    tenant: Tenant


def now() -> str:
    """Local wall-clock time to the second, ISO 8601 without a zone, as the service shows it."""
    return datetime.now().replace(microsecond=0).isoformat()
