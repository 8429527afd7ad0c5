"""What one request's answer (or failure) means for its row: ONE classification table.

    ok        applied; record the returned id
    retry     not applied (or safe to apply again): send again later
    in-doubt  may or may not have been applied: never resend blindly; look it up after a
              grace period, or follow the --in-doubt policy (DESIGN §5)
    failed    the target said no for business reasons (400/403/404/409/422...): record
              X-Application-Error-Code / -Info and move on
    auth      the token was refused: refresh it once and resend

Each row of `RESPONSE_TABLE` and `ERROR_TABLE` gives the kind for a non-idempotent
operation and for an idempotent one; the first row that matches wins. The split between
the two columns is the whole exactly-once argument: when the request may have reached
the server, a create is in doubt, while an update can simply be sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx2

from loader.targets.icasework import ICasework, Operation
from loader.throttle import parse_retry_after


class Kind(StrEnum):
    OK = "ok"
    RETRY = "retry"
    IN_DOUBT = "in-doubt"
    FAILED = "failed"
    AUTH = "auth"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    http_status: int | None
    code: str | None  # X-Application-Error-Code, or the exception's class name
    info: str | None  # X-Application-Error-Info, or the exception's message
    retry_after: float | None  # seconds, from Retry-After when given


ResponseTest = Callable[[httpx2.Response, ICasework], bool]


def _status(*statuses: int) -> ResponseTest:
    return lambda response, target: response.status_code in statuses


def _status_range(low: int, high: int) -> ResponseTest:
    return lambda response, target: low <= response.status_code <= high


def _auth_failure(response: httpx2.Response, target: ICasework) -> bool:
    return target.is_auth_failure(response)


def _503_with_retry_after(response: httpx2.Response, target: ICasework) -> bool:
    return response.status_code == 503 and parse_retry_after(response.headers) is not None


OK, RETRY, IN_DOUBT, FAILED, AUTH = Kind.OK, Kind.RETRY, Kind.IN_DOUBT, Kind.FAILED, Kind.AUTH

# fmt: off
RESPONSE_TABLE: tuple[tuple[str, ResponseTest, Kind, Kind], ...] = (
    # when the answer is ...            matches                   not idempotent  idempotent
    ("2xx",                             _status_range(200, 299),  OK,             OK),
    ("refused token (403 Invalid token / Incorrect key or signature, 401)",
                                        _auth_failure,            AUTH,           AUTH),
    ("429 too many requests",           _status(429),             RETRY,          RETRY),
    # the server says it did not apply it and when to come back
    ("503 with Retry-After",            _503_with_retry_after,    RETRY,          RETRY),
    # the server gave up waiting for the request: it never ran
    ("408 request timeout",             _status(408),             RETRY,          RETRY),
    ("400/403/404/409/422: the business said no",
                                        _status(400, 403, 404, 409, 422),
                                                                  FAILED,         FAILED),
    ("other 4xx: refused as sent",      _status_range(400, 499),  FAILED,         FAILED),
    # a 500 may come after the write was committed
    ("other 5xx",                       _status_range(500, 599),  IN_DOUBT,       RETRY),
    # 1xx/3xx: a POST that is redirected was not applied where we sent it
    ("anything else",                   lambda response, target: True,
                                                                  FAILED,         FAILED),
)

ERROR_TABLE: tuple[tuple[str, tuple[type[httpx2.HTTPError], ...], Kind, Kind], ...] = (
    # when sending failed with ...      exceptions                not idempotent  idempotent
    ("the request never left: connect error/timeout, pool timeout, proxy",
        (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.ProxyError),
                                                                  RETRY,          RETRY),
    ("the request cannot be sent as built",
        (httpx2.UnsupportedProtocol, httpx2.LocalProtocolError, httpx2.TooManyRedirects),
                                                                  FAILED,         FAILED),
    ("the request may have reached the server: read/write timeout, dropped connection",
        (httpx2.ReadTimeout, httpx2.WriteTimeout, httpx2.RemoteProtocolError,
         httpx2.ReadError, httpx2.WriteError, httpx2.CloseError),
                                                                  IN_DOUBT,       RETRY),
    # anything else after the request started (a body that cannot be decoded...)
    ("any other HTTP error",            (httpx2.HTTPError,),      IN_DOUBT,       RETRY),
)
# fmt: on


def classify(
    op: Operation,
    *,
    response: httpx2.Response | None = None,
    error: httpx2.HTTPError | None = None,
    target: ICasework,
) -> Outcome:
    """The outcome of sending `op`: give the `response`, or the `error` raised instead."""
    if (response is None) == (error is None):
        raise ValueError("classify needs a response or an error, not both or neither")
    if error is not None:
        for _, types, not_idempotent, idempotent in ERROR_TABLE:
            if isinstance(error, types):
                kind = idempotent if op.idempotent else not_idempotent
                return Outcome(kind, None, type(error).__name__, str(error) or None, None)
        raise AssertionError("ERROR_TABLE ends with a row for every HTTPError")
    assert response is not None
    for _, matches, not_idempotent, idempotent in RESPONSE_TABLE:
        if matches(response, target):
            kind = idempotent if op.idempotent else not_idempotent
            code, info = target.error(response)
            retry_after = parse_retry_after(response.headers)
            return Outcome(kind, response.status_code, code, info, retry_after)
    raise AssertionError("RESPONSE_TABLE ends with a row that matches every answer")
