"""Every row of the classification table, for a create (not idempotent) and an update."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest

from loader.outcomes import ERROR_TABLE, RESPONSE_TABLE, Kind, Outcome, classify
from loader.targets import OPERATIONS, ICasework

TARGET = ICasework("http://127.0.0.1:8765/?db=acme")
CREATE = OPERATIONS["createcase"]  # not idempotent
UPDATE = OPERATIONS["updatecase"]  # idempotent

OK, RETRY, IN_DOUBT, FAILED, AUTH = Kind.OK, Kind.RETRY, Kind.IN_DOUBT, Kind.FAILED, Kind.AUTH

Handler = Callable[[httpx2.Request], httpx2.Response]


def send(handler: Handler) -> httpx2.Response | httpx2.HTTPError:
    """One createcase request through a MockTransport: the answer, or what was raised."""
    with httpx2.Client(transport=httpx2.MockTransport(handler)) as client:
        request = TARGET.request(CREATE, {"Type": "Complaint"}, "tok")
        try:
            return client.send(request)
        except httpx2.HTTPError as exc:
            return exc


def answer(status: int, **headers: str) -> Handler:
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    return lambda request: httpx2.Response(status, headers=headers, text="<html></html>")


def raises(error: type[httpx2.RequestError], message: str = "boom") -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise error(message, request=request)

    return handler


def errors(code: str, info: str) -> dict[str, str]:
    return {"X_Application_Error_Code": code, "X_Application_Error_Info": info}


NEVER_LEFT = "the request never left: connect error/timeout, pool timeout, proxy"
CANNOT_SEND = "the request cannot be sent as built"
MAYBE_ARRIVED = "the request may have reached the server: read/write timeout, dropped connection"
REFUSED_TOKEN = "refused token (403 Invalid token / Incorrect key or signature, 401)"
BUSINESS = "400/403/404/409/422: the business said no"

# (table row, what happened, kind for a create, kind for an update)
CASES: list[tuple[str, Handler, Kind, Kind]] = [
    ("2xx", answer(200), OK, OK),
    ("2xx", answer(201), OK, OK),
    ("2xx", answer(204), OK, OK),
    (REFUSED_TOKEN, answer(403, **errors("2021", "Invalid token")), AUTH, AUTH),
    (REFUSED_TOKEN, answer(403, **errors("8021", "Incorrect key or signature")), AUTH, AUTH),
    (REFUSED_TOKEN, answer(401), AUTH, AUTH),
    ("429 too many requests", answer(429), RETRY, RETRY),
    ("429 too many requests", answer(429, Retry_After="3"), RETRY, RETRY),
    ("503 with Retry-After", answer(503, Retry_After="30"), RETRY, RETRY),
    ("408 request timeout", answer(408), RETRY, RETRY),
    (BUSINESS, answer(400, **errors("2004", "Invalid value for Type")), FAILED, FAILED),
    (BUSINESS, answer(403, **errors("2022", "Not allowed from this IP")), FAILED, FAILED),
    (BUSINESS, answer(404), FAILED, FAILED),
    (BUSINESS, answer(409), FAILED, FAILED),
    (BUSINESS, answer(422), FAILED, FAILED),
    ("other 4xx: refused as sent", answer(405), FAILED, FAILED),
    ("other 4xx: refused as sent", answer(413), FAILED, FAILED),
    ("other 5xx", answer(500), IN_DOUBT, RETRY),
    ("other 5xx", answer(502), IN_DOUBT, RETRY),
    ("other 5xx", answer(503), IN_DOUBT, RETRY),  # no Retry-After: it may have been applied
    ("other 5xx", answer(503, Retry_After="later"), IN_DOUBT, RETRY),  # unreadable Retry-After
    ("other 5xx", answer(504), IN_DOUBT, RETRY),
    ("anything else", answer(302, Location="/elsewhere"), FAILED, FAILED),
    (NEVER_LEFT, raises(httpx2.ConnectError), RETRY, RETRY),
    (NEVER_LEFT, raises(httpx2.ConnectTimeout), RETRY, RETRY),
    (NEVER_LEFT, raises(httpx2.PoolTimeout), RETRY, RETRY),
    (NEVER_LEFT, raises(httpx2.ProxyError), RETRY, RETRY),
    (CANNOT_SEND, raises(httpx2.UnsupportedProtocol), FAILED, FAILED),
    (CANNOT_SEND, raises(httpx2.LocalProtocolError), FAILED, FAILED),
    (MAYBE_ARRIVED, raises(httpx2.ReadTimeout), IN_DOUBT, RETRY),
    (MAYBE_ARRIVED, raises(httpx2.WriteTimeout), IN_DOUBT, RETRY),
    (MAYBE_ARRIVED, raises(httpx2.RemoteProtocolError), IN_DOUBT, RETRY),
    (MAYBE_ARRIVED, raises(httpx2.ReadError), IN_DOUBT, RETRY),
    (MAYBE_ARRIVED, raises(httpx2.WriteError), IN_DOUBT, RETRY),
    ("any other HTTP error", raises(httpx2.DecodingError), IN_DOUBT, RETRY),
    ("any other HTTP error", raises(httpx2.TimeoutException), IN_DOUBT, RETRY),
]


def which_row(happened: httpx2.Response | httpx2.HTTPError) -> str:
    if isinstance(happened, httpx2.Response):
        return next(when for when, test, _, _ in RESPONSE_TABLE if test(happened, TARGET))
    return next(when for when, types, _, _ in ERROR_TABLE if isinstance(happened, types))


def outcome(op_name: str, happened: httpx2.Response | httpx2.HTTPError) -> Outcome:
    op = OPERATIONS[op_name]
    if isinstance(happened, httpx2.Response):
        return classify(op, response=happened, target=TARGET)
    return classify(op, error=happened, target=TARGET)


@pytest.mark.parametrize(("row", "handler", "create", "update"), CASES)
def test_classification_table(row: str, handler: Handler, create: Kind, update: Kind) -> None:
    happened = send(handler)
    assert which_row(happened) == row
    assert outcome("createcase", happened).kind is create
    assert outcome("createaccount", happened).kind is create
    assert outcome("updatecase", happened).kind is update
    assert outcome("updatecustomer", happened).kind is update


def test_every_row_of_the_table_is_tested() -> None:
    tested = {row for row, *_ in CASES}
    assert tested == {row[0] for row in RESPONSE_TABLE} | {row[0] for row in ERROR_TABLE}


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (
            answer(400, **errors("2004", "Invalid value for RequestMethod")),
            Outcome(FAILED, 400, "2004", "Invalid value for RequestMethod", None),
        ),
        (answer(429, Retry_After="3"), Outcome(RETRY, 429, None, None, 3.0)),
        (
            answer(429, Retry_After="2.5", **errors("2029", "Rate limit exceeded")),
            Outcome(RETRY, 429, "2029", "Rate limit exceeded", 2.5),
        ),
        (
            answer(
                503,
                Retry_After="Wed, 21 Oct 2015 07:28:30 GMT",
                Date="Wed, 21 Oct 2015 07:28:00 GMT",
            ),
            Outcome(RETRY, 503, None, None, 30.0),
        ),
        (answer(500), Outcome(IN_DOUBT, 500, None, None, None)),
        (answer(200), Outcome(OK, 200, None, None, None)),
        (
            raises(httpx2.ReadTimeout, "timed out"),
            Outcome(IN_DOUBT, None, "ReadTimeout", "timed out", None),
        ),
        (raises(httpx2.ConnectError, ""), Outcome(RETRY, None, "ConnectError", None, None)),
    ],
)
def test_outcome_details(handler: Handler, expected: Outcome) -> None:
    assert outcome("createcase", send(handler)) == expected


def test_kinds_are_stable_strings() -> None:
    # The ledger and the attempt log store these values.
    assert [k.value for k in Kind] == ["ok", "retry", "in-doubt", "failed", "auth"]


@pytest.mark.parametrize("given", [{}, "both"])
def test_classify_needs_exactly_one_of_response_and_error(given: object) -> None:
    response = httpx2.Response(200)
    error = httpx2.ReadTimeout("t")
    with pytest.raises(ValueError, match="classify needs a response or an error"):
        if given == "both":
            classify(CREATE, response=response, error=error, target=TARGET)
        else:
            classify(CREATE, target=TARGET)
