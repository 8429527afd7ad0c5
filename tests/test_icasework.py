from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from loader.errors import LoaderError, TargetError
from loader.targets import OPERATIONS, ICasework, Lookup, UploadResult

UAT = ICasework("https://uat.icasework.com/?db=acme")
PROD = ICasework("https://acme.icasework.com/")
SANDBOX = ICasework("http://127.0.0.1:8765/?db=acme")
CREATE = OPERATIONS["createcase"]


@pytest.mark.parametrize(
    ("url", "account", "token_url", "createcase", "getreport"),
    [
        (
            "https://uat.icasework.com/?db=acme",
            "acme",
            "https://uat.icasework.com/token?db=acme",
            "https://uat.icasework.com/createcase?db=acme",
            "https://uat.icasework.com/getreport?db=acme",
        ),
        (
            "https://uat.icasework.com?db=hmcts",
            "hmcts",
            "https://uat.icasework.com/token?db=hmcts",
            "https://uat.icasework.com/createcase?db=hmcts",
            "https://uat.icasework.com/getreport?db=hmcts",
        ),
        (
            "https://acme.icasework.com/",
            "acme",
            "https://acme.icasework.com/token",
            "https://acme.icasework.com/createcase",
            "https://acmereports.icasework.com/getreport",
        ),
        (
            "https://Acme.icasework.com",
            "acme",
            "https://acme.icasework.com/token",
            "https://acme.icasework.com/createcase",
            "https://acmereports.icasework.com/getreport",
        ),
        (
            "http://127.0.0.1:8765/?db=acme",
            "acme",
            "http://127.0.0.1:8765/token?db=acme",
            "http://127.0.0.1:8765/createcase?db=acme",
            "http://127.0.0.1:8765/getreport?db=acme",
        ),
        (
            "http://localhost:9000?db=demo_1",
            "demo_1",
            "http://localhost:9000/token?db=demo_1",
            "http://localhost:9000/createcase?db=demo_1",
            "http://localhost:9000/getreport?db=demo_1",
        ),
    ],
)
def test_target_urls(
    url: str, account: str, token_url: str, createcase: str, getreport: str
) -> None:
    target = ICasework(url)
    assert target.account == account
    assert target.token_url == token_url
    assert target.url("createcase") == createcase
    assert target.url("getreport") == getreport


FORMS = (
    "use https://uat.icasework.com/?db=ACCOUNT (UAT), https://ACCOUNT.icasework.com/ "
    "(production) or http://127.0.0.1:PORT/?db=ACCOUNT (a local sandbox)"
)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://uat.icasework.com/", " (the account name (db=ACCOUNT) is missing or not a name)"),
        (
            "https://uat.icasework.com/?db=a%20b",
            " (the account name (db=ACCOUNT) is missing or not a name)",
        ),
        (
            "https://uat.icasework.com/createcase?db=acme",
            " (give the tenant's base URL, not an endpoint)",
        ),
        ("http://uat.icasework.com/?db=acme", ""),  # iCasework is HTTPS only
        ("http://acme.icasework.com/", ""),
        ("https://uatportal.icasework.com/?db=acme", ""),
        ("https://acme.icasework.com/?db=other", ""),
        ("https://a.b.icasework.com/", ""),
        ("https://example.com/?db=acme", ""),
        ("http://127.0.0.1/?db=acme", ""),  # a sandbox has a port
        ("ftp://127.0.0.1:21/?db=acme", ""),
        ("acme", ""),
    ],
)
def test_other_urls_are_refused_with_the_accepted_forms(url: str, why: str) -> None:
    with pytest.raises(LoaderError) as info:
        ICasework(url)
    assert str(info.value) == f"not an iCasework target URL: {url!r}{why}; {FORMS}"


def test_operations_table() -> None:
    table = {
        name: (op.endpoint, op.idempotent, op.lookup_field, op.id_path, op.chunked)
        for name, op in OPERATIONS.items()
    }
    assert table == {
        "createcase": ("createcase", False, "ExternalId", ("createcaseresponse", "caseid"), False),
        "createaccount": (
            "createaccount",
            False,
            None,
            ("createaccountresponse", "accountid"),
            False,
        ),
        "updatecustomer": ("updatecustomer", True, None, ("updatecustomerresponse", "id"), False),
        "updateaccount": (
            "updateaccount",
            True,
            None,
            ("updateaccountresponse", "accountid"),
            False,
        ),
        "updatecase": ("updatecase", True, None, ("updatecaseattributeresponse", "caseid"), False),
        "uploaddata": ("uploaddata", False, None, ("uploaddataresponse",), True),
    }


def test_request_is_a_json_post_of_flat_dotted_keys() -> None:
    payload = {
        "Type": "Complaint",
        "ExternalId": "L-1",
        "Customer.Surname": "Smith",
        "Customer": {"Email": "a@b.c", "Phone": None},
        "Document1.URLLoadContent": True,
        "Blank": None,
    }
    request = PROD.request(CREATE, payload, "tok-123")
    assert request.method == "POST"
    assert str(request.url) == "https://acme.icasework.com/createcase"
    assert request.headers["Authorization"] == "Bearer tok-123"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "Type": "Complaint",
        "ExternalId": "L-1",
        "Customer.Surname": "Smith",
        "Customer.Email": "a@b.c",
        "Document1.URLLoadContent": True,
        "Format": "json",
    }
    assert "tok-123" not in repr(request)


@pytest.mark.parametrize(
    ("payload", "flat"),
    [
        (
            {"Type": "Complaint", "ExternalId": "L-1", "Customer.Surname": "Smïth €"},
            {"Type": "Complaint", "ExternalId": "L-1", "Customer.Surname": "Smïth €"},
        ),
        (
            {"Type": "Complaint", "Customer": {"Surname": "Ng"}, "Note": None, "Count": 3},
            {"Type": "Complaint", "Customer.Surname": "Ng", "Count": 3},
        ),
    ],
)
def test_request_sends_the_bytes_httpx2_json_would(
    payload: dict[str, Any], flat: dict[str, Any]
) -> None:
    request = UAT.request(CREATE, payload, "tok-1")
    reference = httpx2.Request("POST", UAT.url("createcase"), json={**flat, "Format": "json"})
    assert request.content == reference.content
    assert request.headers["Content-Length"] == str(len(reference.content))


def test_request_reuses_the_parsed_url_and_follows_a_new_token() -> None:
    target = ICasework("http://127.0.0.1:8000/?db=demo")
    first = target.request(CREATE, {"Type": "Complaint"}, "tok-1")
    second = target.request(CREATE, {"Type": "Complaint"}, "tok-2")
    assert first.url == second.url == httpx2.URL("http://127.0.0.1:8000/createcase?db=demo")
    assert first.headers["Authorization"] == "Bearer tok-1"
    assert second.headers["Authorization"] == "Bearer tok-2"
    second.headers["X-Extra"] = "1"  # a request's headers are its own copy
    assert "X-Extra" not in target.request(CREATE, {"Type": "Complaint"}, "tok-2").headers
    assert "tok-2" not in repr(target)


def test_request_refuses_a_chunked_operation() -> None:
    with pytest.raises(ValueError, match="uploaddata sends rows in chunks: use upload_request"):
        UAT.request(OPERATIONS["uploaddata"], {}, "t")


@pytest.mark.parametrize(
    ("op", "response", "new_id"),
    [
        (
            "createcase",
            httpx2.Response(200, json={"createcaseresponse": {"caseid": "489834"}}),
            "489834",
        ),
        (
            "createcase",
            httpx2.Response(200, json={"createcaseresponse": {"caseid": 489834}}),
            "489834",
        ),
        (
            "createaccount",
            httpx2.Response(200, json={"createaccountresponse": {"accountid": "7"}}),
            "7",
        ),
        (
            "updatecustomer",
            httpx2.Response(200, json={"updatecustomerresponse": {"id": "C9"}}),
            "C9",
        ),
        # the vendor's envelope and the sandbox's
        (
            "updatecase",
            httpx2.Response(200, json={"updatecaseattributeresponse": {"caseid": "5"}}),
            "5",
        ),
        ("updatecase", httpx2.Response(200, json={"updatecaseresponse": {"caseid": "5"}}), "5"),
        ("createcase", httpx2.Response(200, json={"createcaseresponse": {}}), None),
        ("createcase", httpx2.Response(200, json={"createcaseresponse": {"caseid": ""}}), None),
        ("createcase", httpx2.Response(200, json={"other": 1, "x": 2}), None),
        ("createcase", httpx2.Response(200, text="<createcaseresponse/>"), None),
        ("createcase", httpx2.Response(200), None),
    ],
)
def test_new_id(op: str, response: httpx2.Response, new_id: str | None) -> None:
    assert UAT.new_id(OPERATIONS[op], response) == new_id


def error_response(status: int, code: str | None, info: str | None) -> httpx2.Response:
    headers = {}
    if code is not None:
        headers["X-Application-Error-Code"] = code
    if info is not None:
        headers["X-Application-Error-Info"] = info
    return httpx2.Response(status, headers=headers, text="<html>An Unexpected Error Occured</html>")


@pytest.mark.parametrize(
    ("status", "code", "info", "auth"),
    [
        (403, "2021", "Invalid token", True),
        (403, "8021", "Invalid token (6)", True),
        (403, "8021", "Incorrect key or signature", True),
        (401, None, None, True),
        (403, "2022", "Not allowed from this IP address", False),
        (403, None, None, False),
        (400, "2021", "Invalid token", False),
        (200, None, None, False),
    ],
)
def test_error_headers_and_auth_failures(
    status: int, code: str | None, info: str | None, auth: bool
) -> None:
    response = error_response(status, code, info)
    assert UAT.error(response) == (code, info)
    assert UAT.is_auth_failure(response) is auth


Handler = Callable[[httpx2.Request], httpx2.Response]


def lookup(handler: Handler, value: str = "L-1", target: ICasework = UAT) -> Lookup:
    async def main() -> Lookup:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
            return await target.lookup(client, CREATE, value, "tok")

    return asyncio.run(main())


def test_lookup_request() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"CaseDetails.CaseId": "1"})

    lookup(handler, "L 1&2", PROD)
    (request,) = seen
    assert request.method == "GET"
    assert request.url.path == "/getcasedetails" and request.url.host == "acme.icasework.com"
    assert dict(request.url.params) == {"ExternalId": "L 1&2", "Format": "json"}
    assert request.headers["Authorization"] == "Bearer tok"


def answer(response: httpx2.Response) -> Handler:
    return lambda request: response


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            httpx2.Response(
                200, json={"CaseDetails.CaseId": "487347", "CaseDetails.ExternalId": "L-1"}
            ),
            Lookup("found", ("487347",), http_status=200),
        ),
        (
            # several cases share the ExternalId: concatenated objects, not an array
            httpx2.Response(
                200,
                text='{"CaseDetails.CaseId": "1"}{"CaseDetails.CaseId": "2"}\n '
                '{"CaseDetails.CaseId": 3}',
            ),
            Lookup("found", ("1", "2", "3"), http_status=200),
        ),
        (
            httpx2.Response(200, json=[{"CaseDetails.CaseId": "1"}, {"CaseDetails.CaseId": "2"}]),
            Lookup("found", ("1", "2"), http_status=200),
        ),
        (
            httpx2.Response(200, json={"Cases": {"Case": {"CaseDetails.CaseId": "9"}}}),
            Lookup("found", ("9",), http_status=200),
        ),
        (
            httpx2.Response(200, text="<html>oops</html>"),
            Lookup("unknown", http_status=200, info="the answer is not JSON"),
        ),
        (
            error_response(400, "12002", "Unable to identify case"),
            Lookup("absent", http_status=400, code="12002", info="Unable to identify case"),
        ),
        (
            error_response(400, None, "Unable to identify case by ExternalId"),
            Lookup("absent", http_status=400, info="Unable to identify case by ExternalId"),
        ),
        (
            error_response(400, "12099", "Various"),
            Lookup("unknown", http_status=400, code="12099", info="Various"),
        ),
        (
            error_response(403, "12021", "Invalid token"),
            Lookup(
                "unknown", http_status=403, code="12021", info="Invalid token", auth_failed=True
            ),
        ),
        (error_response(503, None, None), Lookup("unknown", http_status=503, info="HTTP 503")),
        (error_response(429, None, None), Lookup("unknown", http_status=429, info="HTTP 429")),
    ],
)
def test_lookup_answers(response: httpx2.Response, expected: Lookup) -> None:
    assert lookup(answer(response)) == expected


def test_lookup_transport_error_is_unknown_not_raised() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    assert lookup(handler) == Lookup("unknown", info="ReadTimeout: timed out")


def test_lookup_needs_a_lookup_field() -> None:
    async def main() -> None:
        async with httpx2.AsyncClient(
            transport=httpx2.MockTransport(answer(httpx2.Response(200)))
        ) as client:
            await UAT.lookup(client, OPERATIONS["createaccount"], "x", "t")

    with pytest.raises(ValueError, match="createaccount has no look-up"):
        asyncio.run(main())


def test_upload_request_is_a_csv_chunk() -> None:
    rows: list[dict[str, Any]] = [
        {"Id": "C1", "Surname": "O'Brien, Jr", "Active": True},
        {"Id": "C2", "FirstName": "Zoë", "Surname": 'Say "hi"\nthere', "Active": None},
    ]
    request = SANDBOX.upload_request("customers", rows, "tok")
    assert request.method == "POST"
    assert str(request.url) == "http://127.0.0.1:8765/uploaddata?db=acme&Type=customers&Format=json"
    assert request.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert request.headers["Authorization"] == "Bearer tok"
    text = request.content.decode("utf-8")
    assert text.splitlines()[0] == "Id,Surname,Active,FirstName"
    assert list(csv.reader(io.StringIO(text))) == [
        ["Id", "Surname", "Active", "FirstName"],
        ["C1", "O'Brien, Jr", "true", ""],
        ["C2", 'Say "hi"\nthere', "", "Zoë"],
    ]


@pytest.mark.parametrize(
    ("count", "message"),
    [(0, "an upload needs at least one row"), (5001, "at most 5000 rows per upload, not 5001")],
)
def test_upload_request_limits(count: int, message: str) -> None:
    with pytest.raises(ValueError) as info:
        UAT.upload_request("customers", [{"Id": str(n)} for n in range(count)], "t")
    assert str(info.value) == message


def test_upload_limit_fits_exactly() -> None:
    request = UAT.upload_request("customers", [{"Id": str(n)} for n in range(5000)], "t")
    assert request.content.decode().count("\r\n") == 5001


def test_upload_results() -> None:
    body = {
        "uploaddataresponse": {
            "type": "customers",
            "rows": 3,
            "created": 1,
            "updated": 1,
            "rejected": 1,
            "results": [
                {"row": 1, "status": "created", "id": "C1"},
                {"row": 2, "status": "updated", "id": 77, "code": None, "info": ""},
                {
                    "row": 3,
                    "status": "rejected",
                    "code": "30004",
                    "info": "Invalid value for Title",
                },
            ],
        }
    }
    assert UAT.upload_results(httpx2.Response(200, json=body)) == [
        UploadResult(1, "created", "C1"),
        UploadResult(2, "updated", "77"),
        UploadResult(3, "rejected", None, "30004", "Invalid value for Title"),
    ]


@pytest.mark.parametrize(
    "response",
    [
        httpx2.Response(200, text="<html/>"),
        httpx2.Response(200, json={"uploaddataresponse": {}}),
        httpx2.Response(
            200, json={"uploaddataresponse": {"results": [{"row": 1, "status": "ok"}]}}
        ),
        httpx2.Response(
            200, json={"uploaddataresponse": {"results": [{"row": "1", "status": "created"}]}}
        ),
        httpx2.Response(200, json={"uploaddataresponse": {"results": [7]}}),
    ],
)
def test_upload_results_of_an_unexpected_answer_stop_the_run(response: httpx2.Response) -> None:
    with pytest.raises(TargetError) as info:
        UAT.upload_results(response)
    assert str(info.value) == (
        "https://uat.icasework.com/uploaddata?db=acme answered HTTP 200 without the expected "
        "uploaddataresponse results; rows of this chunk may have been applied: check them on "
        "the target"
    )
